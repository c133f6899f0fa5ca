import PluginAPI
import Testing

private struct StubStrategy: AuthStrategy {
    var credentialScope: CredentialScope { .uncached }
    func credential(for request: CredentialRequest, context: StrategyContext) async -> CredentialOutcome { .inject(Credential()) }
}

private struct ZetaFactory: AuthStrategyFactory {
    struct Config: Decodable, Sendable {}
    static let id = "zeta"
    func makeStrategy(_ config: Config, context: StrategyContext) async throws -> any AuthStrategy { StubStrategy() }
}

private struct AlphaFactory: AuthStrategyFactory {
    struct Config: Decodable, Sendable {}
    static let id = "alpha"
    func makeStrategy(_ config: Config, context: StrategyContext) async throws -> any AuthStrategy { StubStrategy() }
}

/// Same ID as ``AlphaFactory``: a second plugin claiming it.
private struct OtherAlphaFactory: AuthStrategyFactory {
    struct Config: Decodable, Sendable {}
    static let id = "alpha"
    func makeStrategy(_ config: Config, context: StrategyContext) async throws -> any AuthStrategy { StubStrategy() }
}

/// A plugin with parameters and a validation rule.
private struct HeaderFactory: AuthStrategyFactory {
    struct Config: Decodable, Sendable {
        var header: String
        var value: Secret
    }
    static let id = "static-header"
    func validate(_ config: Config, in context: ValidationContext) throws(PluginConfigError) {
        if config.header.lowercased() == "host" {
            throw PluginConfigError(key: "header", message: "'Host' cannot be injected", hint: "pick another header")
        }
        if context.connection.kind != .application {
            throw PluginConfigError(key: nil, message: "only for applications")
        }
    }
    func makeStrategy(_ config: Config, context: StrategyContext) async throws -> any AuthStrategy { StubStrategy() }
}

private let validationContext = ValidationContext(
    connection: ConnectionDescriptor(name: "github", kind: .application, title: "GitHub"), agent: nil, lookup: { _ in nil })

@Suite("PluginAPI: PluginRegistry")
struct PluginRegistryTests {
    @Test func listsIDsSorted() throws {
        var registry = PluginRegistry()
        #expect(registry.ids.isEmpty)
        try registry.register(ZetaFactory())
        try registry.register(HeaderFactory())
        try registry.register(AlphaFactory())
        #expect(registry.ids == ["alpha", "static-header", "zeta"])
        #expect(registry.factory(id: "zeta")?.id == "zeta")
        #expect(registry.factory(id: "alpha")?.id == "alpha")
        #expect(registry.factory(id: "missing") == nil)
    }

    @Test func refusesADuplicateID() throws {
        var registry = PluginRegistry()
        try registry.register(AlphaFactory())
        do {
            try registry.register(OtherAlphaFactory())
            Issue.record("a second plugin with id 'alpha' was accepted")
        } catch {
            #expect(error.id == "alpha")
            #expect(error.description.contains("'alpha'"))
            #expect(error.description.contains("already registered"))
        }
        #expect(registry.ids == ["alpha"])
    }

    @Test func prepareDecodesStrictlyAndValidates() throws {
        var registry = PluginRegistry()
        try registry.register(HeaderFactory())
        let factory = try #require(registry.factory(id: "static-header"))
        let decoder = ConfigDecoder(file: "c.yaml", baseDirectory: "/base")

        let good = Tree.map(10, 7, [("header", 10, 7, Tree.s("X-Api-Key", 10, 15)), ("value", 11, 7, Tree.s("k", 11, 14))])
        let prepared = try factory.prepare(good, decoder: decoder, context: validationContext)
        #expect(prepared.pluginID == "static-header")
        let again = try factory.prepare(
            Tree.map(1, 1, [("header", 1, 1, Tree.s("X-Api-Key", 1, 9)), ("value", 2, 1, Tree.s("k", 2, 8))]),
            decoder: decoder, context: validationContext)
        #expect(prepared.sameContent(as: again))

        // An unknown key is a ConfigError at the key.
        let typo = Tree.map(10, 7, [
            ("header", 10, 7, Tree.s("X-Api-Key", 10, 15)), ("value", 11, 7, Tree.s("k", 11, 14)), ("valeu", 12, 7, Tree.s("k", 12, 14)),
        ])
        do {
            _ = try factory.prepare(typo, decoder: decoder, context: validationContext)
            Issue.record("unknown key accepted")
        } catch let error as ConfigError {
            #expect(error.location == Tree.at(12, 7))
            #expect(error.message == "unknown key 'valeu'")
            #expect(error.hint == "known keys here: header, value")
        }

        // Validation failures come back as the plugin's PluginConfigError.
        let host = Tree.map(10, 7, [("header", 10, 7, Tree.s("Host", 10, 15)), ("value", 11, 7, Tree.s("k", 11, 14))])
        do {
            _ = try factory.prepare(host, decoder: decoder, context: validationContext)
            Issue.record("validation did not run")
        } catch let error as PluginConfigError {
            #expect(error == PluginConfigError(key: "header", message: "'Host' cannot be injected", hint: "pick another header"))
        }
    }
}
