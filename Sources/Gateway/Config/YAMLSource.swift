import Foundation
import PluginAPI
import Yams

/// Turns YAML text into a ``ConfigNode`` tree with line and column on every node.
enum YAMLSource {
    static func parse(_ text: String, file: String) throws(ConfigError) -> ConfigNode {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw convert(error, file: file)
        } catch {
            throw ConfigError(file: file, location: nil, message: "not valid YAML: \(error)")
        }
        guard let root else {
            throw ConfigError(file: file, location: SourceLocation(line: 1, column: 1), message: "the file is empty", hint: "start with 'version: 1'")
        }
        return try node(root, file: file)
    }

    private static func location(_ mark: Mark?) -> SourceLocation {
        SourceLocation(line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    private static func node(_ n: Node, file: String) throws(ConfigError) -> ConfigNode {
        switch n {
        case .scalar(let s):
            let quoted = s.style == .singleQuoted || s.style == .doubleQuoted || s.style == .literal || s.style == .folded
            if !quoted, ["", "~", "null", "Null", "NULL"].contains(s.string) { return .null(at: location(s.mark)) }
            return .scalar(s.string, quoted: quoted, at: location(s.mark))
        case .sequence(let seq):
            var items: [ConfigNode] = []
            for item in seq { items.append(try node(item, file: file)) }
            return .sequence(items, at: location(seq.mark))
        case .mapping(let map):
            var entries: [ConfigNode.Entry] = []
            var seen: [String: SourceLocation] = [:]
            for (k, v) in map {
                guard case .scalar(let keyScalar) = k else {
                    throw ConfigError(file: file, location: location(k.mark), message: "mapping keys must be plain strings")
                }
                let keyLoc = location(keyScalar.mark)
                if let first = seen[keyScalar.string] {
                    throw ConfigError(
                        file: file, location: keyLoc, message: "duplicate key '\(keyScalar.string)' (first at line \(first.line))",
                        hint: "keep one of them")
                }
                seen[keyScalar.string] = keyLoc
                entries.append(.init(key: keyScalar.string, keyLocation: keyLoc, value: try node(v, file: file)))
            }
            return .mapping(entries, at: location(map.mark))
        case .alias(let alias):
            throw ConfigError(file: file, location: location(alias.mark), message: "YAML aliases are not supported", hint: "write the value out")
        }
    }

    private static func convert(_ error: YamlError, file: String) -> ConfigError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ConfigError(file: file, location: SourceLocation(line: mark.line, column: mark.column), message: "not valid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, _):
            return ConfigError(file: file, location: nil, message: "duplicate keys: \(duplicates.joined(separator: ", "))", hint: "keep one of each")
        default:
            return ConfigError(file: file, location: nil, message: "not valid YAML: \(error)")
        }
    }
}
