public import AsyncHTTPClient
import Foundation
import Logging
public import PluginAPI
import ConfigYAML

/// One connection of a plugin under test, its `auth` block, the connections it may reference
/// and the agent identity: everything the gateway would hand the plugin's factory, without a
/// gateway.
///
/// ```swift
/// let fixture = try PluginFixture(yaml: """
///     connections:
///       - {name: todo-as, kind: authorization_server, issuer: "\(issuer)/oauth2/todo-mcp"}
///       - name: todo0
///         kind: mcp_server
///         upstream: http://127.0.0.1:5002/mcp
///         auth: {strategy: idjag, authorization_server: todo-as, scopes: [mcp:connect]}
///     """, connection: "todo0", agent: agent)
/// #expect(fixture.validationError(IDJAGStrategyFactory()) == nil)
/// let plugin = try await fixture.provision(IDJAGStrategyFactory())
/// let outcome = await plugin.credential(for: try TestCaller.fromIDToken(idToken))
/// ```
public struct PluginFixture: Sendable {
    /// The connection under test.
    public var connection: ConnectionDescriptor
    /// Every connection of the fixture, the one under test included (what `lookup` finds).
    public var connections: [ConnectionDescriptor]
    /// The agent identity (`agent:`), if any.
    public var agent: AgentIdentity?
    /// The connection's `auth` block as written, `strategy` included when given.
    public var auth: ConfigNode
    /// Names the YAML in error messages.
    public var file: String
    /// Where relative `file:` secrets resolve (default: the working directory).
    public var baseDirectory: String

    /// The fixture for `connection` in YAML shaped like connections.yaml: `connections:` (the
    /// entry under test has an `auth` block) and optionally `agent:`; `version`, `gateway` and
    /// `users` are accepted and ignored, so a real file can be pasted. Entries are decoded
    /// strictly. `agent`, when given, replaces the YAML's.
    public init(
        yaml: String, connection name: String, agent: AgentIdentity? = nil, file: String = "connections.yaml",
        baseDirectory: String = "."
    ) throws(ConfigError) {
        let root = try YAMLSource.parse(yaml, file: file)
        let document = try ConfigDecoder(file: file, baseDirectory: baseDirectory).decode(FixtureDocument.self, from: root)
        let descriptors = document.connections.map(\.descriptor)
        guard let index = document.connections.firstIndex(where: { $0.name == name }) else {
            throw ConfigError(file: file, location: root.location, message: "no connection named '\(name)' in the fixture")
        }
        guard let auth = document.connections[index].auth else {
            throw ConfigError(file: file, location: root.location, message: "connection '\(name)' has no 'auth' block")
        }
        self.connection = descriptors[index]
        self.connections = descriptors
        self.agent = agent ?? document.agent.map { AgentIdentity(id: $0.id, keyID: $0.keyID, privateKey: $0.privateKey) }
        self.auth = auth
        self.file = file
        self.baseDirectory = baseDirectory
    }

    /// The fixture for a built `connection` (see ``TestConnection``) whose `auth` block is the YAML
    /// text `auth` (`strategy` may be left out), beside the connections in `others`.
    public init(
        connection: ConnectionDescriptor, auth: String, others: [ConnectionDescriptor] = [], agent: AgentIdentity? = nil,
        file: String = "auth.yaml", baseDirectory: String = "."
    ) throws(ConfigError) {
        self.connection = connection
        self.connections = [connection] + others
        self.agent = agent
        self.auth = try YAMLSource.parse(auth, file: file)
        self.file = file
        self.baseDirectory = baseDirectory
    }

    /// Finds a connection of the fixture by name, as the gateway's registry does.
    public var lookup: @Sendable (String) -> ConnectionDescriptor? {
        let byName = Dictionary(connections.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        return { byName[$0] }
    }

    /// What the factory's `validate` sees.
    public var validationContext: ValidationContext {
        ValidationContext(connection: connection, agent: agent, lookup: lookup)
    }

    /// Decodes the `auth` block strictly and runs the factory's validation, as the gateway does
    /// when it loads connections.yaml; nil when the config is valid.
    public func validationError<F: AuthStrategyFactory>(_ factory: F) -> ValidationFailure? {
        do {
            _ = try prepare(factory)
            return nil
        } catch {
            return error
        }
    }

    /// What the factory declares its strategy needs outside the gateway (what `switchboard
    /// doctor` checks), through the type-erased factory as the gateway reads it.
    public func requirements<F: AuthStrategyFactory>(_ factory: F) throws(ValidationFailure) -> StrategyRequirements {
        let (erased, prepared) = try prepare(factory)
        return erased.requirements(prepared, context: validationContext)
    }

    /// Decodes, validates and provisions the strategy with a ``StrategyContext`` built from the
    /// fixture: `httpClient` (default `HTTPClient.shared`; never shut down), a ``CapturingLog``'s
    /// logger (labelled and tagged like the gateway's), `clock`, a fresh ``PluginCache`` on that
    /// clock, `lookup`, and a `reportUse` that records into ``StrategyUnderTest/uses``.
    ///
    /// Throws a ``ValidationFailure`` when the config is invalid, or what `makeStrategy` throws.
    public func provision<F: AuthStrategyFactory>(
        _ factory: F, clock: TestClock = TestClock(), log: CapturingLog = CapturingLog(), httpClient: HTTPClient = .shared
    ) async throws -> StrategyUnderTest {
        let (erased, prepared) = try prepare(factory)
        var logger = log.logger(label: "switchboard.plugin")
        logger[metadataKey: "connection"] = "\(connection.name)"
        logger[metadataKey: "plugin"] = "\(F.id)"
        let uses = ReportedUses()
        let context = StrategyContext(
            connection: connection, agent: agent, httpClient: httpClient, logger: logger, clock: clock,
            cache: PluginCache(capacity: 10_000, clock: clock), lookup: lookup, reportUse: { uses.record($0, $1) })
        let strategy = try await erased.makeStrategy(prepared, context: context)
        return StrategyUnderTest(strategy: strategy, context: context, clock: clock, log: log, uses: uses)
    }

    /// Through PluginAPI's own registry and type-erased factory: the gateway's path exactly.
    private func prepare<F: AuthStrategyFactory>(_ factory: F) throws(ValidationFailure) -> (AnyAuthStrategyFactory, PreparedStrategyConfig) {
        var registry = PluginRegistry()
        guard (try? registry.register(factory)) != nil, let erased = registry.factory(id: F.id) else {
            preconditionFailure("an empty registry refused '\(F.id)'")
        }
        guard case .mapping = auth else {
            throw ValidationFailure(stage: .strategy, key: nil, error: ConfigError(file: file, location: auth.location, message: "'auth' must be a mapping"))
        }
        if let entry = auth.entry("strategy") {
            guard case .scalar(let id, _, _) = entry.value, id == F.id else {
                throw ValidationFailure(stage: .strategy, key: "strategy", error: ConfigError(
                    file: file, location: entry.value.location, message: "the fixture's auth.strategy is not '\(F.id)'",
                    hint: "write 'strategy: \(F.id)' or provision the plugin it names"))
            }
        }
        let parameters = auth.removing(key: "strategy")
        do {
            let prepared = try erased.prepare(parameters, decoder: ConfigDecoder(file: file, baseDirectory: baseDirectory), context: validationContext)
            return (erased, prepared)
        } catch let error as ConfigError {
            throw ValidationFailure(stage: .decoding, key: nil, error: error)
        } catch let error as PluginConfigError {
            let location = error.key.flatMap { parameters.entry($0)?.value.location } ?? auth.location
            throw ValidationFailure(
                stage: .validation, key: error.key, error: ConfigError(file: file, location: location, message: error.message, hint: error.hint))
        } catch {
            throw ValidationFailure(stage: .validation, key: nil, error: ConfigError(file: file, location: auth.location, message: "\(error)"))
        }
    }
}

/// Why a plugin's `auth` block was refused, located in the fixture's YAML.
public struct ValidationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Stage: Sendable, Equatable {
        /// The block is not a mapping, or its `strategy` names another plugin.
        case strategy
        /// Strict decoding into the plugin's `Config`: an unknown or missing key, a wrong type.
        case decoding
        /// The factory's `validate` threw a ``PluginConfigError``.
        case validation
    }

    public var stage: Stage
    /// The parameter the plugin named (``PluginConfigError/key``); nil for decoding errors and
    /// errors about the whole block.
    public var key: String?
    /// File, line, column, message and hint, as the gateway would report them.
    public var error: ConfigError

    public var message: String { error.message }
    public var hint: String? { error.hint }
    public var location: SourceLocation? { error.location }
    public var description: String { error.description }
}

/// The `connections.yaml` subset a fixture reads.
private struct FixtureDocument: Decodable {
    struct Agent: Decodable {
        var id: String
        var keyID: String
        var privateKey: Secret?

        enum CodingKeys: String, CodingKey {
            case id
            case keyID = "key_id"
            case privateKey = "private_key"
        }
    }

    struct Connection: Decodable {
        var name: String
        var kind: ConnectionKind
        var title: String?
        var upstream: String?
        var issuer: String?
        var resource: String?
        var route: String?
        var registrationID: String?
        var auth: ConfigNode?
        /// Gateway-only settings, accepted so a real entry can be pasted.
        var enabled: ConfigNode?
        var timeouts: ConfigNode?
        var maxRequestBody: ConfigNode?

        enum CodingKeys: String, CodingKey {
            case name, kind, title, upstream, issuer, resource, route, auth, enabled, timeouts
            case registrationID = "registration_id"
            case maxRequestBody = "max_request_body"
        }

        var descriptor: ConnectionDescriptor {
            switch kind {
            case .authorizationServer:
                return ConnectionDescriptor(name: name, kind: kind, title: title ?? name, issuer: issuer, registrationID: registrationID)
            case .application, .mcpServer:
                return TestConnection.upstreamConnection(
                    name, kind: kind, upstream: upstream, resource: resource, route: route, title: title, registrationID: registrationID)
            }
        }
    }

    var agent: Agent?
    var connections: [Connection]
    /// Accepted and ignored: the gateway's own settings.
    var version: ConfigNode?
    var gateway: ConfigNode?
    var users: ConfigNode?
}
