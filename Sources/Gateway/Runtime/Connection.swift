import Foundation
import PluginAPI
import Synchronization
import Upstream

/// A connection as the proxy uses it: validated, with its upstream parsed and its plugin
/// provisioned. Immutable; a reload builds new ones (reusing unchanged ones whole).
final class Connection: Sendable {
    let plan: RegistryPlan.PlannedConnection
    /// Upstream base URL without a trailing slash.
    let upstreamBase: String?
    /// `upstreamBase` parsed once (scheme, host, port, path prefix).
    let upstreamOrigin: UpstreamOrigin?
    let strategy: (any AuthStrategy)?
    let strategyContext: StrategyContext?
    let activity: ConnectionActivity
    let responseTimeout: Duration
    let maxRequestBody: Int
    /// Credentials this connection's plugin issued, per user and scope set.
    let credentials: SingleFlightCache<CredentialKey, CredentialOutcome>
    /// The replicas' shared state (`gateway.state`), or nil in a single process.
    let shared: (any SharedStateStore)?
    /// The buckets of `rate_limits:` (kept while the connection is reused across reloads).
    let limiter = RateLimiter()
    /// Scopes a user's calls needed after a step-up: their next calls ask for these at once.
    private let widenedScopes = Mutex<[String: Set<String>]>([:])

    func scopes(for user: String) -> Set<String>? { widenedScopes.withLock { $0[user] } }

    /// `share`: tell the other replicas too (`gateway.state`; a step-up is rare, so off the call's path).
    func remember(scopes: Set<String>, for user: String, share: Bool = true) {
        widenedScopes.withLock { m in
            if m.count >= 100_000 { m.removeAll(keepingCapacity: true) }
            m[user] = scopes
        }
        if share, let shared {
            let name = self.name
            Task { try? await shared.rememberScopes(scopes, connection: name, user: user) }
        }
    }

    var descriptor: ConnectionDescriptor { plan.descriptor }
    var name: String { plan.descriptor.name }
    var enabled: Bool { plan.enabled }
    /// Whether a user's own state (credential, consent) exists here: per-user strategies only.
    var tracksUsers: Bool { strategy?.credentialScope == .perUser }

    init(
        plan: RegistryPlan.PlannedConnection, settings: GatewaySettings, strategy: (any AuthStrategy)?,
        strategyContext: StrategyContext?, activity: ConnectionActivity, shared: (any SharedStateStore)? = nil
    ) {
        self.shared = shared
        self.plan = plan
        if let upstream = plan.descriptor.upstream {
            upstreamBase = upstream.hasSuffix("/") ? String(upstream.dropLast()) : upstream
        } else {
            upstreamBase = nil
        }
        upstreamOrigin = upstreamBase.flatMap(UpstreamOrigin.init)
        self.strategy = strategy
        self.strategyContext = strategyContext
        self.activity = activity
        self.responseTimeout = plan.responseTimeout ?? settings.responseTimeout
        self.maxRequestBody = plan.maxRequestBody ?? settings.maxRequestBody
        self.credentials = SingleFlightCache(capacity: 100_000, clock: strategyContext?.clock ?? SystemClock())
    }
}
