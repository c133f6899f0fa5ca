/// The auth-strategy plugins the gateway knows, by ID.
///
/// Build one with the built-ins (`StandardPlugins.registry()`) and add your own with
/// ``register(_:)``; the gateway consults it for every `auth.strategy` in connections.yaml.
public struct PluginRegistry: Sendable {
    private var factories: [String: AnyAuthStrategyFactory] = [:]

    public init() {}

    /// Adds a factory. Two plugins with one ID is a programming error: it throws.
    public mutating func register<F: AuthStrategyFactory>(_ factory: F) throws(PluginRegistrationError) {
        guard factories[F.id] == nil else { throw PluginRegistrationError(id: F.id) }
        factories[F.id] = AnyAuthStrategyFactory(factory)
    }

    /// IDs of every registered plugin, sorted.
    public var ids: [String] { factories.keys.sorted() }

    /// The factory registered under `id`.
    public func factory(id: String) -> AnyAuthStrategyFactory? { factories[id] }
}

/// Thrown when a plugin ID is registered twice.
public struct PluginRegistrationError: Error, Sendable, CustomStringConvertible {
    public var id: String
    public var description: String { "an auth-strategy plugin with id '\(id)' is already registered" }
}

/// A plugin config that decoded and validated, ready to provision.
public struct PreparedStrategyConfig: Sendable {
    /// The plugin ID.
    public let pluginID: String
    let config: any Sendable
    let node: ConfigNode

    /// True when both were decoded from the same `auth` parameters (locations aside).
    public func sameContent(as other: PreparedStrategyConfig) -> Bool {
        pluginID == other.pluginID && node.sameContent(as: other.node)
    }
}

/// A type-erased ``AuthStrategyFactory``.
public struct AnyAuthStrategyFactory: Sendable {
    /// The plugin ID.
    public let id: String
    private let _prepare: @Sendable (ConfigNode, ConfigDecoder, ValidationContext) throws -> PreparedStrategyConfig
    private let _make: @Sendable (PreparedStrategyConfig, StrategyContext) async throws -> any AuthStrategy
    private let _requirements: @Sendable (PreparedStrategyConfig, ValidationContext) -> StrategyRequirements

    init<F: AuthStrategyFactory>(_ factory: F) {
        id = F.id
        _prepare = { node, decoder, context in
            let config = try decoder.decode(F.Config.self, from: node)
            try factory.validate(config, in: context)
            return PreparedStrategyConfig(pluginID: F.id, config: config, node: node)
        }
        _make = { prepared, context in
            guard let config = prepared.config as? F.Config else {
                preconditionFailure("config prepared by another plugin handed to '\(F.id)'")
            }
            return try await factory.makeStrategy(config, context: context)
        }
        _requirements = { prepared, context in
            guard let config = prepared.config as? F.Config else { return .none }
            return factory.requirements(config, in: context)
        }
    }

    /// Decodes (strictly) and validates the `auth` parameters. Throws ``ConfigError`` or
    /// ``PluginConfigError``.
    public func prepare(_ node: ConfigNode, decoder: ConfigDecoder, context: ValidationContext) throws -> PreparedStrategyConfig {
        try _prepare(node, decoder, context)
    }

    /// What the strategy of a prepared config needs outside the gateway (`switchboard doctor`).
    public func requirements(_ prepared: PreparedStrategyConfig, context: ValidationContext) -> StrategyRequirements {
        _requirements(prepared, context)
    }

    /// Provisions a strategy from a prepared config.
    public func makeStrategy(_ prepared: PreparedStrategyConfig, context: StrategyContext) async throws -> any AuthStrategy {
        try await _make(prepared, context)
    }
}
