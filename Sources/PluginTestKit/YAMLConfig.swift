public import PluginAPI
import Yams

/// YAML text → ``ConfigNode`` with the line and column of every node, the shape the gateway
/// hands to ``ConfigDecoder``, so a plugin's strict decoding errors point where they would in
/// connections.yaml. No `${VAR}` interpolation: a test writes the values it means.
///
/// The gateway's own reader is internal to `Gateway` and PluginAPI has no YAML parser (a
/// plugin never parses YAML), so this is the test kit's small equivalent.
public enum YAMLConfig {
    /// Parses `text`; `file` names it in errors.
    public static func parse(_ text: String, file: String = "connections.yaml") throws(ConfigError) -> ConfigNode {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw ConfigError(file: file, location: nil, message: "not valid YAML: \(error)")
        }
        guard let root else { throw ConfigError(file: file, location: SourceLocation(line: 1, column: 1), message: "the YAML text is empty") }
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
            for (k, v) in map {
                guard case .scalar(let key) = k else {
                    throw ConfigError(file: file, location: location(k.mark), message: "mapping keys must be plain strings")
                }
                entries.append(.init(key: key.string, keyLocation: location(key.mark), value: try node(v, file: file)))
            }
            return .mapping(entries, at: location(map.mark))
        case .alias(let alias):
            throw ConfigError(file: file, location: location(alias.mark), message: "YAML aliases are not supported")
        }
    }
}
