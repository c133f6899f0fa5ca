import Foundation
public import PluginAPI

/// A registry that parsed and validated, not yet provisioned (no plugin instances, no I/O).
/// `switchboard validate` stops here; the gateway provisions it into a ``Registry``.
public struct RegistryPlan: Sendable {
    /// One validated connection.
    public struct PlannedConnection: Sendable {
        public var descriptor: ConnectionDescriptor
        public var enabled: Bool
        /// Why it is disabled (`enabled: false`, `DISABLED_CONNECTIONS`).
        public var disabledReason: String?
        public var strategy: PreparedStrategyConfig?
        var factory: AnyAuthStrategyFactory?
        public var responseTimeout: Duration?
        public var maxRequestBody: Int?
        /// Who may call what on this connection.
        var policy = ConnectionPolicy()
        /// The `policy:` node it was read from (to tell whether a reload changed it).
        var policyNode: ConfigNode?
        /// `rate_limits:`, validated (and as written, to tell whether a reload changed them).
        var rateLimits: [RateLimit] = []
        var rateLimitConfigs: [RateLimitConfig] = []
        /// `audit.arguments`: the fields to redact when the tool arguments are kept; nil: not kept.
        var auditArgumentsRedacting: Set<String>?

        /// Same settings as `other` (source positions aside): its runtime can be reused.
        func sameContent(as other: PlannedConnection) -> Bool {
            guard descriptor == other.descriptor, enabled == other.enabled, responseTimeout == other.responseTimeout,
                maxRequestBody == other.maxRequestBody
            else { return false }
            guard rateLimitConfigs == other.rateLimitConfigs, auditArgumentsRedacting == other.auditArgumentsRedacting else { return false }
            switch (policyNode, other.policyNode) {
            case (nil, nil): break
            case (let a?, let b?): if !a.sameContent(as: b) { return false }
            default: return false
            }
            switch (strategy, other.strategy) {
            case (nil, nil): return true
            case (let a?, let b?): return a.sameContent(as: b)
            default: return false
            }
        }
    }

    /// The file it came from.
    public var file: String
    public var settings: GatewaySettings
    public var agent: AgentIdentity?
    public var users: UsersConfig
    public var connections: [PlannedConnection]
    /// `virtual_servers:`, validated.
    public var virtualServers: [VirtualServer] = []
    /// `policies:`: rules for every connection, before each connection's own.
    var policies: [PolicyRule] = []
    /// What is allowed but likely a mistake (a glob naming no connection); logged at load.
    public var warnings: [String] = []

    /// What a connection's strategy needs outside the gateway (`switchboard doctor`); nil for a
    /// connection without one.
    public func requirements(of connection: PlannedConnection) -> StrategyRequirements? {
        guard let factory = connection.factory, let prepared = connection.strategy else { return nil }
        let byName = Dictionary(connections.map { ($0.descriptor.name, $0.descriptor) }, uniquingKeysWith: { a, _ in a })
        return factory.requirements(prepared, context: ValidationContext(connection: connection.descriptor, agent: agent, lookup: { byName[$0] }))
    }
}
