import Foundation
import PluginAPI
import Testing

/// Builds ConfigNode trees by hand, with explicit positions.
enum Tree {
    static func at(_ line: Int, _ column: Int) -> PluginAPI.SourceLocation { .init(line: line, column: column) }

    static func s(_ text: String, _ line: Int, _ column: Int, quoted: Bool = false) -> ConfigNode {
        .scalar(text, quoted: quoted, at: at(line, column))
    }

    static func null(_ line: Int, _ column: Int) -> ConfigNode { .null(at: at(line, column)) }

    /// A mapping whose entries are `(key, keyLine, keyColumn, value)`.
    static func map(_ line: Int, _ column: Int, _ entries: [(String, Int, Int, ConfigNode)]) -> ConfigNode {
        .mapping(entries.map { .init(key: $0.0, keyLocation: at($0.1, $0.2), value: $0.3) }, at: at(line, column))
    }

    static func list(_ line: Int, _ column: Int, _ items: [ConfigNode]) -> ConfigNode { .sequence(items, at: at(line, column)) }
}

private struct Sample: Decodable, Equatable {
    struct Nested: Decodable, Equatable {
        var a: String
        var b: Int?
    }
    struct Item: Decodable, Equatable {
        var id: String
    }
    var name: String
    var port: Int
    var enabled: Bool?
    var nested: Nested?
    var items: [Item]?
}

private struct WithDuration: Decodable { var timeout: ConfigDuration }
private struct WithSize: Decodable { var limit: ConfigByteSize }
private struct WithParams: Decodable {
    var kind: String
    var params: ConfigNode
}

private let decoder = ConfigDecoder(file: "test.yaml", baseDirectory: "/base")

/// The error decoding `T` from `node` throws; records an issue when it decodes.
private func decodeError<T: Decodable>(
    _ type: T.Type, _ node: ConfigNode, sourceLocation: Testing.SourceLocation = #_sourceLocation
) -> ConfigError? {
    do {
        let value = try decoder.decode(T.self, from: node)
        Issue.record("expected a decoding error, got \(value)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// `name: web`, `port: 8080` at lines 1 and 2, then `extra`.
private func sampleNode(_ extra: [(String, Int, Int, ConfigNode)] = []) -> ConfigNode {
    Tree.map(1, 1, [("name", 1, 1, Tree.s("web", 1, 7)), ("port", 2, 1, Tree.s("8080", 2, 7))] + extra)
}

@Suite("PluginAPI: ConfigDecoder")
struct ConfigDecoderTests {
    @Test func decodesAWellFormedTree() throws {
        let node = sampleNode([
            ("enabled", 3, 1, Tree.s("TRUE", 3, 10)),
            ("nested", 4, 1, Tree.map(5, 3, [("a", 5, 3, Tree.s("x", 5, 6)), ("b", 6, 3, Tree.s("1_000", 6, 6))])),
            ("items", 7, 1, Tree.list(8, 3, [Tree.map(8, 5, [("id", 8, 5, Tree.s("i1", 8, 9))])])),
        ])
        let value = try decoder.decode(Sample.self, from: node)
        #expect(value == Sample(name: "web", port: 8080, enabled: true, nested: .init(a: "x", b: 1000), items: [.init(id: "i1")]))
    }

    @Test func nullMeansAbsentForOptionals() throws {
        let value = try decoder.decode(Sample.self, from: sampleNode([("enabled", 3, 1, Tree.null(3, 9))]))
        #expect(value.enabled == nil)
    }

    @Test func unknownTopLevelKeyIsAnErrorAtTheKey() throws {
        let error = try #require(decodeError(Sample.self, sampleNode([("prot", 3, 1, Tree.s("1", 3, 7))])))
        #expect(error.file == "test.yaml")
        #expect(error.location == Tree.at(3, 1))
        #expect(error.message == "unknown key 'prot'")
        #expect(error.hint == "known keys here: enabled, items, name, nested, port")
    }

    @Test func unknownNestedKeyNamesItsPath() throws {
        let node = sampleNode([("nested", 3, 1, Tree.map(4, 3, [("a", 4, 3, Tree.s("x", 4, 6)), ("c", 5, 3, Tree.s("y", 5, 6))]))])
        let error = try #require(decodeError(Sample.self, node))
        #expect(error.location == Tree.at(5, 3))
        #expect(error.message == "unknown key 'c' in nested")
        #expect(error.hint == "known keys here: a, b")
    }

    @Test func unknownKeyInAListItemNamesItsIndex() throws {
        let node = sampleNode([
            ("items", 3, 1, Tree.list(4, 3, [
                Tree.map(4, 5, [("id", 4, 5, Tree.s("i1", 4, 9))]),
                Tree.map(5, 5, [("id", 5, 5, Tree.s("i2", 5, 9)), ("colour", 6, 5, Tree.s("red", 6, 13))]),
            ])),
        ])
        let error = try #require(decodeError(Sample.self, node))
        #expect(error.location == Tree.at(6, 5))
        #expect(error.message == "unknown key 'colour' in items[1]")
        #expect(error.hint == "known keys here: id")
    }

    @Test func typeMismatchPointsAtTheValue() throws {
        let node = Tree.map(1, 1, [("name", 1, 1, Tree.s("web", 1, 7)), ("port", 2, 1, Tree.s("eighty", 2, 7))])
        let error = try #require(decodeError(Sample.self, node))
        #expect(error.location == Tree.at(2, 7))
        #expect(error.message == "port: expected a whole number, found 'eighty'")
    }

    @Test func boolMismatch() throws {
        let error = try #require(decodeError(Sample.self, sampleNode([("enabled", 3, 1, Tree.s("yes", 3, 10))])))
        #expect(error.location == Tree.at(3, 10))
        #expect(error.message == "enabled: expected true or false, found 'yes'")
    }

    @Test func shapeMismatch() throws {
        let error = try #require(decodeError(Sample.self, sampleNode([("nested", 3, 1, Tree.list(3, 9, []))])))
        #expect(error.location == Tree.at(3, 9))
        #expect(error.message == "nested: expected a mapping, found a list")

        let scalarForList = try #require(decodeError(Sample.self, sampleNode([("items", 3, 1, Tree.s("x", 3, 8))])))
        #expect(scalarForList.location == Tree.at(3, 8))
        #expect(scalarForList.message == "items: expected a list, found a scalar")

        let mappingForString = try #require(decodeError(Sample.self, Tree.map(1, 1, [
            ("name", 1, 1, Tree.map(2, 3, [("x", 2, 3, Tree.s("y", 2, 6))])), ("port", 3, 1, Tree.s("1", 3, 7)),
        ])))
        #expect(mappingForString.location == Tree.at(2, 3))
        #expect(mappingForString.message == "name: expected a string, found a mapping")
    }

    @Test func missingRequiredKeyPointsAtItsMapping() throws {
        let error = try #require(decodeError(Sample.self, Tree.map(3, 5, [("name", 3, 5, Tree.s("web", 3, 11))])))
        #expect(error.location == Tree.at(3, 5))
        #expect(error.message == "missing required key 'port'")
        #expect(error.hint == "add 'port: …'")

        let nested = try #require(decodeError(Sample.self, sampleNode([("nested", 3, 1, Tree.map(4, 3, [("b", 4, 3, Tree.s("1", 4, 6))]))])))
        #expect(nested.location == Tree.at(4, 3))
        #expect(nested.message == "missing required key 'a' in nested")
    }

    @Test func configNodePassesThroughWithAnyKeys() throws {
        let params = Tree.map(2, 3, [
            ("anything", 2, 3, Tree.s("goes", 2, 13)),
            ("deep", 3, 3, Tree.map(4, 5, [("x", 4, 5, Tree.list(4, 8, [Tree.s("1", 4, 9, quoted: true)]))])),
        ])
        let node = Tree.map(1, 1, [("kind", 1, 1, Tree.s("k", 1, 7)), ("params", 2, 1, params)])
        let value = try decoder.decode(WithParams.self, from: node)
        #expect(value.kind == "k")
        #expect(value.params == params)  // same content and same locations
    }

    @Test func configNodeDoesNotHideUnknownKeysBesideIt() throws {
        let node = Tree.map(1, 1, [
            ("kind", 1, 1, Tree.s("k", 1, 7)), ("params", 2, 1, Tree.map(3, 3, [])), ("other", 4, 1, Tree.s("x", 4, 8)),
        ])
        let error = try #require(decodeError(WithParams.self, node))
        #expect(error.location == Tree.at(4, 1))
        #expect(error.message == "unknown key 'other'")
    }

    @Test func sameContentIgnoresLocations() {
        let a = Tree.map(1, 1, [("x", 1, 1, Tree.s("1", 1, 4))])
        let b = Tree.map(7, 3, [("x", 7, 3, Tree.s("1", 7, 6))])
        let quoted = Tree.map(1, 1, [("x", 1, 1, Tree.s("1", 1, 4, quoted: true))])
        #expect(a != b)
        #expect(a.sameContent(as: b))
        #expect(!a.sameContent(as: quoted))
        #expect(a.removing(key: "x").sameContent(as: Tree.map(1, 1, [])))
        #expect(a.entry("x")?.keyLocation == Tree.at(1, 1))
    }

    @Test func errorDescriptionIsCompilerStyle() {
        let e = ConfigError(file: "c.yaml", location: Tree.at(3, 7), message: "bad", hint: "fix it")
        #expect(e.description == "c.yaml:3:7: error: bad — fix it")
        #expect(ConfigError(file: "c.yaml", location: nil, message: "bad").description == "c.yaml: error: bad")
    }

    // MARK: ConfigDuration

    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)),
        ("5s", .seconds(5)),
        ("2m", .seconds(120)),
        ("1h", .seconds(3600)),
        ("30d", .seconds(30 * 86400)),  // gateway.audit.retention as the README writes it
        ("1.5s", .milliseconds(1500)),
        ("30", .seconds(30)),
    ])
    func durations(text: String, expected: Duration) throws {
        let node = Tree.map(1, 1, [("timeout", 1, 1, Tree.s(text, 1, 10))])
        #expect(try decoder.decode(WithDuration.self, from: node).timeout.duration == expected)
    }

    @Test(arguments: ["bad", "5xs", "-1s", "ms", "", "5 minutes", "1e300s", "inf", "36501d"])
    func badDurations(text: String) throws {
        let node = Tree.map(1, 1, [("timeout", 1, 1, Tree.s(text, 2, 12))])
        let error = try #require(decodeError(WithDuration.self, node))
        #expect(error.location == Tree.at(2, 12))
        #expect(error.message == "timeout: '\(text)' is not a duration")
        #expect(error.hint == "write e.g. 250ms, 5s, 2m, 1h or 30d (at most 100 years)")
    }

    // MARK: ConfigByteSize

    @Test(arguments: [
        ("1MiB", 1_048_576),
        ("10MB", 10_000_000),
        ("512", 512),
        ("512KiB", 524_288),
        ("2KB", 2000),
        ("7B", 7),
        ("1GiB", 1_073_741_824),
    ])
    func byteSizes(text: String, expected: Int) throws {
        let node = Tree.map(1, 1, [("limit", 1, 1, Tree.s(text, 1, 8))])
        #expect(try decoder.decode(WithSize.self, from: node).limit.bytes == expected)
    }

    @Test(arguments: ["-1", "lots", "1.5MiB", "-1KiB", "99999999999999999999GiB", "10mb"])
    func badByteSizes(text: String) throws {
        let node = Tree.map(1, 1, [("limit", 1, 1, Tree.s(text, 4, 8))])
        let error = try #require(decodeError(WithSize.self, node))
        #expect(error.location == Tree.at(4, 8))
        #expect(error.message == "limit: '\(text)' is not a size")
        #expect(error.hint?.contains("1MiB") == true)
    }

    // MARK: Secret

    @Test func inlineSecretIsRedacted() throws {
        struct WithSecret: Decodable { var key: Secret }
        let node = Tree.map(1, 1, [("key", 1, 1, Tree.s("hunter2", 1, 6))])
        let value = try decoder.decode(WithSecret.self, from: node)
        #expect(value.key.reveal() == "hunter2")
        #expect(value.key.source == "inline")
        #expect("\(value.key)" == "<redacted>")
        #expect(String(reflecting: value.key) == "<redacted>")
    }

    @Test func missingSecretFileIsAnErrorAtTheValue() throws {
        struct WithSecret: Decodable { var key: Secret }
        let node = Tree.map(1, 1, [("key", 1, 1, Tree.s("file:nope/secret.txt", 1, 6))])
        let error = try #require(decodeError(WithSecret.self, node))
        #expect(error.location == Tree.at(1, 6))
        #expect(error.message == "key: cannot read secret file '/base/nope/secret.txt'")
    }
}
