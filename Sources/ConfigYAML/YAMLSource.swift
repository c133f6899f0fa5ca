public import PluginAPI
import Yams

/// Turns YAML text into a ``ConfigNode`` tree with line and column on every node: the one
/// YAML reader of connections.yaml, used by the gateway and by PluginTestKit (so a plugin's
/// decoding errors point in a test where they would in the file). No `${VAR}` interpolation
/// here: that is the gateway's step after parsing.
public enum YAMLSource {
    public static func parse(_ text: String, file: String = "connections.yaml") throws(ConfigError) -> ConfigNode {
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

    /// The next line after `first` with `key:` at the same indentation.
    static func repetition(of key: String, after first: Mark, in text: String) -> SourceLocation? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard first.line >= 1, first.line <= lines.count else { return nil }
        let indent = first.column - 1
        for index in first.line..<lines.count {
            let line = lines[index]
            guard line.count > indent else { continue }
            let start = line.index(line.startIndex, offsetBy: indent)
            let rest = line[start...]
            if rest.hasPrefix(key + ":") || rest.hasPrefix("\"\(key)\":") || rest.hasPrefix("'\(key)':") {
                if line[..<start].allSatisfy({ $0 == " " || $0 == "-" }) {
                    return SourceLocation(line: index + 1, column: first.column)
                }
            }
        }
        return nil
    }

    private static func convert(_ error: YamlError, file: String) -> ConfigError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ConfigError(file: file, location: SourceLocation(line: mark.line, column: mark.column), message: "not valid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            // Yams reports the first occurrence; point at the repetition, which is the edit to undo.
            let key = duplicates.first ?? "?"
            let first = context.mark
            let again = repetition(of: key, after: first, in: context.text)
            return ConfigError(
                file: file, location: again ?? SourceLocation(line: first.line, column: first.column),
                message: "duplicate key '\(key)' (first at line \(first.line))", hint: "keep one of them")
        default:
            return ConfigError(file: file, location: nil, message: "not valid YAML: \(error)")
        }
    }
}
