import Foundation
import PluginAPI

/// One immutable generation of the registry: what every request is routed against.
///
/// Swapped atomically on reload; a request keeps the generation it started with.
final class Registry: Sendable {
    let generation: Int
    let loadedAt: Date
    let plan: RegistryPlan
    let authenticator: InboundAuthenticator
    /// In file order, for status.
    let connections: [Connection]
    let byName: [String: Connection]
    /// Route segment → connection, one table per route prefix: O(1) lookup.
    let mcpRoutes: [Substring: Connection]
    let restRoutes: [Substring: Connection]
    /// Each connection's rules as this generation's top-level `policies:` and its own make
    /// them; absent when nothing can refuse a call on it.
    private let policies: [ObjectIdentifier: CompiledPolicy]

    var settings: GatewaySettings { plan.settings }

    init(generation: Int, loadedAt: Date, plan: RegistryPlan, authenticator: InboundAuthenticator, connections: [Connection]) {
        self.generation = generation
        self.loadedAt = loadedAt
        self.plan = plan
        self.authenticator = authenticator
        self.connections = connections
        var byName: [String: Connection] = [:]
        var mcp: [Substring: Connection] = [:]
        var rest: [Substring: Connection] = [:]
        for c in connections {
            byName[c.name] = c
            guard let route = c.descriptor.route else { continue }
            switch c.descriptor.kind {
            case .mcpServer: mcp[Substring(route.dropFirst("/mcp/".count))] = c
            case .application: rest[Substring(route.dropFirst("/rest/".count))] = c
            case .authorizationServer: break
            }
        }
        self.byName = byName
        self.mcpRoutes = mcp
        self.restRoutes = rest
        var policies: [ObjectIdentifier: CompiledPolicy] = [:]
        for c in connections {
            policies[ObjectIdentifier(c)] = CompiledPolicy(global: plan.policies, connection: c.plan.policy, name: c.name)
        }
        self.policies = policies
    }

    /// The rules calls on `connection` are judged by; nil when nothing can refuse them.
    func policy(for connection: Connection) -> CompiledPolicy? {
        policies.isEmpty ? nil : policies[ObjectIdentifier(connection)]
    }

    /// The strategies this generation created (not inherited), for shutdown.
    func strategies(notIn other: Registry?) -> [any AuthStrategy] {
        connections.compactMap { c in
            guard let s = c.strategy else { return nil }
            if let o = other?.byName[c.name], o === c { return nil }
            return s
        }
    }
}
