/// A position in a configuration file (1-based line and column).
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    /// 1-based line number.
    public var line: Int
    /// 1-based column number.
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

/// A parsed configuration value that remembers where it came from.
///
/// The gateway turns `connections.yaml` into a tree of `ConfigNode`s (after `${VAR}`
/// interpolation) and decodes typed configs from it with a strict decoder, so every error can
/// name the file, line and column. A plugin never builds nodes itself; it declares a
/// `Decodable` config type and receives the decoded value.
public indirect enum ConfigNode: Sendable, Equatable {
    /// One entry of a mapping, with the location of its key.
    public struct Entry: Sendable, Equatable {
        public var key: String
        public var keyLocation: SourceLocation
        public var value: ConfigNode

        public init(key: String, keyLocation: SourceLocation, value: ConfigNode) {
            self.key = key
            self.keyLocation = keyLocation
            self.value = value
        }
    }

    /// A scalar; `quoted` is true when the YAML source quoted it (so `"1"` stays a string).
    case scalar(String, quoted: Bool, at: SourceLocation)
    /// An explicit or empty null (`~`, `null`, nothing).
    case null(at: SourceLocation)
    /// A mapping, entries in source order.
    case mapping([Entry], at: SourceLocation)
    /// A sequence.
    case sequence([ConfigNode], at: SourceLocation)

    /// Where the node starts in its file.
    public var location: SourceLocation {
        switch self {
        case .scalar(_, _, let at), .null(let at), .mapping(_, let at), .sequence(_, let at): return at
        }
    }

    /// A short name for the node's shape, used in error messages.
    public var kindName: String {
        switch self {
        case .scalar: return "a scalar"
        case .null: return "null"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }

    /// The entry for `key` when this node is a mapping.
    public func entry(_ key: String) -> Entry? {
        guard case .mapping(let entries, _) = self else { return nil }
        return entries.first { $0.key == key }
    }

    /// The node with the entry `key` removed (mappings only).
    public func removing(key: String) -> ConfigNode {
        guard case .mapping(let entries, let at) = self else { return self }
        return .mapping(entries.filter { $0.key != key }, at: at)
    }

    /// Equality that ignores source locations: two configs that say the same thing are equal.
    public func sameContent(as other: ConfigNode) -> Bool {
        switch (self, other) {
        case (.scalar(let a, let qa, _), .scalar(let b, let qb, _)): return a == b && qa == qb
        case (.null, .null): return true
        case (.sequence(let a, _), .sequence(let b, _)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.sameContent(as: $1) }
        case (.mapping(let a, _), .mapping(let b, _)):
            return a.count == b.count
                && zip(a, b).allSatisfy { $0.key == $1.key && $0.value.sameContent(as: $1.value) }
        default: return false
        }
    }
}
