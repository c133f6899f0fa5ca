import Foundation

/// Decodes typed configuration from a ``ConfigNode`` tree, strictly.
///
/// Strict means: a key that no decoded type asked for is an error ("unknown key"), a scalar
/// that does not convert to the requested type is an error, and every error carries the
/// line and column of the node at fault. Plugin configs are decoded with it too, so a plugin
/// gets strict decoding by declaring a plain `Decodable` type.
public struct ConfigDecoder: Sendable {
    /// The file name used in error messages.
    public var file: String
    /// Values handed to `Decodable` initialisers (``ConfigDecoder/baseDirectoryKey`` etc.).
    public var baseDirectory: String

    /// `userInfo` key under which the directory for relative `file:` paths is passed.
    public static let baseDirectoryKey = CodingUserInfoKey(rawValue: "switchboard.baseDirectory")!

    public init(file: String, baseDirectory: String) {
        self.file = file
        self.baseDirectory = baseDirectory
    }

    /// Decodes `T` from `node`; throws ``ConfigError`` on the first problem.
    public func decode<T: Decodable>(_ type: T.Type, from node: ConfigNode, path: [any CodingKey] = []) throws(ConfigError) -> T {
        let state = DecodingState(baseDirectory: baseDirectory)
        let decoder = NodeDecoder(node: node, codingPath: path, state: state)
        let value: T
        do {
            value = try decoder.decodeValue(T.self)
        } catch let error as ConfigError {
            throw error
        } catch let failure as NodeDecodingFailure {
            throw ConfigError(file: file, location: failure.location, message: failure.message, hint: failure.hint)
        } catch let error as DecodingError {
            throw convert(error, state: state, root: node)
        } catch {
            throw ConfigError(file: file, location: node.location, message: "\(error)")
        }
        if let unknown = state.firstUnknownKey() {
            throw ConfigError(
                file: file, location: unknown.location,
                message: "unknown key '\(unknown.key)'\(unknown.path.isEmpty ? "" : " in \(unknown.path)")",
                hint: unknown.known.isEmpty ? "remove it" : "known keys here: \(unknown.known.sorted().joined(separator: ", "))"
            )
        }
        return value
    }

    private func convert(_ error: DecodingError, state: DecodingState, root: ConfigNode) -> ConfigError {
        switch error {
        case .keyNotFound(let key, let context):
            let loc = state.location(of: context.codingPath) ?? root.location
            let place = context.codingPath.isEmpty ? "" : " in \(pathString(context.codingPath))"
            return ConfigError(file: file, location: loc, message: "missing required key '\(key.stringValue)'\(place)", hint: "add '\(key.stringValue): …'")
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let loc = state.location(of: context.codingPath) ?? root.location
            let place = context.codingPath.isEmpty ? "" : "\(pathString(context.codingPath)): "
            return ConfigError(file: file, location: loc, message: place + context.debugDescription)
        @unknown default:
            return ConfigError(file: file, location: root.location, message: "\(error)")
        }
    }
}

/// Formats a coding path the way YAML users read it: `connections[2].auth.strategy`.
func pathString(_ path: [any CodingKey]) -> String {
    var out = ""
    for key in path {
        if let index = key.intValue { out += "[\(index)]" } else {
            out += out.isEmpty ? key.stringValue : ".\(key.stringValue)"
        }
    }
    return out
}

/// Thrown by the node decoder itself: already carries a location.
struct NodeDecodingFailure: Error {
    var location: SourceLocation
    var message: String
    var hint: String?
}

/// Shared bookkeeping for one decode: which keys of which mapping were asked for.
final class DecodingState: @unchecked Sendable {
    struct Visited {
        var path: [any CodingKey]
        var entries: [ConfigNode.Entry]
        var requested: Set<String>
        var acceptsAll: Bool
    }
    let baseDirectory: String
    private var visited: [String: Visited] = [:]
    private var order: [String] = []
    private var locations: [String: SourceLocation] = [:]

    init(baseDirectory: String) { self.baseDirectory = baseDirectory }

    func note(path: [any CodingKey], node: ConfigNode) {
        locations[pathString(path)] = node.location
    }

    func register(path: [any CodingKey], entries: [ConfigNode.Entry]) {
        let id = pathString(path)
        if visited[id] == nil {
            visited[id] = Visited(path: path, entries: entries, requested: [], acceptsAll: false)
            order.append(id)
        }
    }

    func request(path: [any CodingKey], key: String) {
        visited[pathString(path)]?.requested.insert(key)
    }

    func acceptAll(path: [any CodingKey]) {
        visited[pathString(path)]?.acceptsAll = true
    }

    func location(of path: [any CodingKey]) -> SourceLocation? {
        var p = path
        while true {
            if let loc = locations[pathString(p)] { return loc }
            if p.isEmpty { return nil }
            p.removeLast()
        }
    }

    func firstUnknownKey() -> (key: String, location: SourceLocation, path: String, known: Set<String>)? {
        for id in order {
            guard let v = visited[id], !v.acceptsAll else { continue }
            for entry in v.entries where !v.requested.contains(entry.key) {
                return (entry.key, entry.keyLocation, pathString(v.path), v.requested)
            }
        }
        return nil
    }
}

struct IndexKey: CodingKey {
    var stringValue: String { "\(intValue!)" }
    var intValue: Int?
    init(_ index: Int) { intValue = index }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.intValue = intValue }
}

struct NameKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

/// The `Decoder` over one node.
struct NodeDecoder: Decoder {
    let node: ConfigNode
    let codingPath: [any CodingKey]
    let state: DecodingState
    var userInfo: [CodingUserInfoKey: Any] { [ConfigDecoder.baseDirectoryKey: state.baseDirectory] }

    init(node: ConfigNode, codingPath: [any CodingKey], state: DecodingState) {
        self.node = node
        self.codingPath = codingPath
        self.state = state
        state.note(path: codingPath, node: node)
    }

    func fail(_ message: String, hint: String? = nil) -> NodeDecodingFailure {
        let place = codingPath.isEmpty ? "" : "\(pathString(codingPath)): "
        return NodeDecodingFailure(location: node.location, message: place + message, hint: hint)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .mapping(let entries, _) = node else {
            throw fail("expected a mapping, found \(node.kindName)")
        }
        state.register(path: codingPath, entries: entries)
        return KeyedDecodingContainer(KeyedNodeContainer<Key>(decoder: self, entries: entries))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .sequence(let items, _) = node else {
            throw fail("expected a list, found \(node.kindName)")
        }
        return UnkeyedNodeContainer(decoder: self, items: items)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleNodeContainer(decoder: self) }

    func child(_ node: ConfigNode, key: any CodingKey) -> NodeDecoder {
        NodeDecoder(node: node, codingPath: codingPath + [key], state: state)
    }

    /// Decodes `T`, special-casing `ConfigNode` (returned as is, all keys accepted).
    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == ConfigNode.self {
            markAllAccepted(node, path: codingPath)
            return node as! T
        }
        do {
            return try T(from: self)
        } catch let error as ConfigValueError {
            throw fail(error.message, hint: error.hint)
        }
    }

    private func markAllAccepted(_ node: ConfigNode, path: [any CodingKey]) {
        if case .mapping(let entries, _) = node {
            state.register(path: path, entries: entries)
            state.acceptAll(path: path)
        }
    }

    // Scalars
    func scalarText(_ expected: String) throws -> (String, Bool) {
        switch node {
        case .scalar(let text, let quoted, _): return (text, quoted)
        default: throw fail("expected \(expected), found \(node.kindName)")
        }
    }

    func decodeBool() throws -> Bool {
        let (text, _) = try scalarText("true or false")
        switch text.lowercased() {
        case "true": return true
        case "false": return false
        default: throw fail("expected true or false, found '\(text)'")
        }
    }

    func decodeInteger<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        let (text, _) = try scalarText("a whole number")
        let cleaned = text.replacingOccurrences(of: "_", with: "")
        guard let value = I(cleaned) else { throw fail("expected a whole number, found '\(text)'") }
        return value
    }

    func decodeDouble() throws -> Double {
        let (text, _) = try scalarText("a number")
        guard let value = Double(text) else { throw fail("expected a number, found '\(text)'") }
        return value
    }

    func decodeString() throws -> String {
        let (text, _) = try scalarText("a string")
        return text
    }
}

struct KeyedNodeContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: NodeDecoder
    let entries: [ConfigNode.Entry]
    var codingPath: [any CodingKey] { decoder.codingPath }

    var allKeys: [Key] {
        entries.compactMap { entry in
            decoder.state.request(path: codingPath, key: entry.key)
            return Key(stringValue: entry.key)
        }
    }

    private func entry(_ key: Key) -> ConfigNode.Entry? {
        decoder.state.request(path: codingPath, key: key.stringValue)
        return entries.first { $0.key == key.stringValue }
    }

    private func required(_ key: Key) throws -> NodeDecoder {
        guard let entry = entry(key) else {
            let place = codingPath.isEmpty ? "" : " in \(pathString(codingPath))"
            throw NodeDecodingFailure(
                location: decoder.node.location,
                message: "missing required key '\(key.stringValue)'\(place)",
                hint: "add '\(key.stringValue): …'"
            )
        }
        return decoder.child(entry.value, key: key)
    }

    func contains(_ key: Key) -> Bool { entry(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool {
        guard let entry = entry(key) else { return true }
        if case .null = entry.value { return true }
        return false
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try required(key).decodeBool() }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try required(key).decodeString() }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try required(key).decodeDouble() }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { Float(try required(key).decodeDouble()) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try required(key).decodeInteger(Int.self) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try required(key).decodeInteger(Int8.self) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try required(key).decodeInteger(Int16.self) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try required(key).decodeInteger(Int32.self) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try required(key).decodeInteger(Int64.self) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try required(key).decodeInteger(UInt.self) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try required(key).decodeInteger(UInt8.self) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try required(key).decodeInteger(UInt16.self) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try required(key).decodeInteger(UInt32.self) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try required(key).decodeInteger(UInt64.self) }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try required(key).decodeValue(T.self) }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let entry = entry(key) else { return nil }
        if case .null = entry.value { return nil }
        return try decoder.child(entry.value, key: key).decodeValue(T.self)
    }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? {
        guard let entry = entry(key) else { return nil }
        if case .null = entry.value { return nil }
        return try decoder.child(entry.value, key: key).decodeString()
    }
    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? {
        guard let entry = entry(key) else { return nil }
        if case .null = entry.value { return nil }
        return try decoder.child(entry.value, key: key).decodeBool()
    }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? {
        guard let entry = entry(key) else { return nil }
        if case .null = entry.value { return nil }
        return try decoder.child(entry.value, key: key).decodeInteger(Int.self)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try required(key).container(keyedBy: type)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { try required(key).unkeyedContainer() }
    func superDecoder() throws -> any Decoder { decoder }
    func superDecoder(forKey key: Key) throws -> any Decoder { try required(key) }
}

struct UnkeyedNodeContainer: UnkeyedDecodingContainer {
    let decoder: NodeDecoder
    let items: [ConfigNode]
    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }
    var currentIndex = 0

    init(decoder: NodeDecoder, items: [ConfigNode]) {
        self.decoder = decoder
        self.items = items
    }

    private mutating func next() throws -> NodeDecoder {
        guard !isAtEnd else {
            throw NodeDecodingFailure(location: decoder.node.location, message: "list ended early")
        }
        defer { currentIndex += 1 }
        return decoder.child(items[currentIndex], key: IndexKey(currentIndex))
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { return false }
        if case .null = items[currentIndex] { currentIndex += 1; return true }
        return false
    }
    mutating func decode(_ type: Bool.Type) throws -> Bool { try next().decodeBool() }
    mutating func decode(_ type: String.Type) throws -> String { try next().decodeString() }
    mutating func decode(_ type: Double.Type) throws -> Double { try next().decodeDouble() }
    mutating func decode(_ type: Int.Type) throws -> Int { try next().decodeInteger(Int.self) }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next().decodeValue(T.self) }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next().container(keyedBy: type)
    }
    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try next().unkeyedContainer() }
    mutating func superDecoder() throws -> any Decoder { try next() }
}

struct SingleNodeContainer: SingleValueDecodingContainer {
    let decoder: NodeDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool {
        if case .null = decoder.node { return true }
        return false
    }
    func decode(_ type: Bool.Type) throws -> Bool { try decoder.decodeBool() }
    func decode(_ type: String.Type) throws -> String { try decoder.decodeString() }
    func decode(_ type: Double.Type) throws -> Double { try decoder.decodeDouble() }
    func decode(_ type: Float.Type) throws -> Float { Float(try decoder.decodeDouble()) }
    func decode(_ type: Int.Type) throws -> Int { try decoder.decodeInteger(Int.self) }
    func decode(_ type: Int8.Type) throws -> Int8 { try decoder.decodeInteger(Int8.self) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decoder.decodeInteger(Int16.self) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decoder.decodeInteger(Int32.self) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decoder.decodeInteger(Int64.self) }
    func decode(_ type: UInt.Type) throws -> UInt { try decoder.decodeInteger(UInt.self) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decoder.decodeInteger(UInt8.self) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decoder.decodeInteger(UInt16.self) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decoder.decodeInteger(UInt32.self) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decoder.decodeInteger(UInt64.self) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decodeValue(T.self) }
}

extension ConfigNode: Decodable {
    /// Only the gateway's config decoder can produce a raw node (it hands the subtree over).
    public init(from decoder: any Decoder) throws {
        guard let d = decoder as? NodeDecoder else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "ConfigNode decodes only with ConfigDecoder"))
        }
        self = d.node
    }
}
