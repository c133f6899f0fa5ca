import Foundation
import PluginAPI
import Tracing

/// Key of a cached credential: the user (empty for shared credentials) and the scope set.
struct CredentialKey: Hashable, Sendable {
    var user: String
    var scopes: String
}

/// Asks a connection's plugin for a credential, through the connection's cache.
///
/// One implementation for every plugin: the plugin says what its credential depends on
/// (``CredentialScope``); concurrent first calls for one key run the plugin once; a
/// credential is reused until `refreshMargin` before it expires. With `gateway.state` the
/// in-process cache has a second level every replica shares (``SharedCredentials``).
enum CredentialResolver {
    static let refreshMargin: TimeInterval = 30

    /// The cache key of `caller`'s credential for `scopes`; nil when the plugin's credentials
    /// are not cached.
    static func key(_ strategy: any AuthStrategy, caller: CallerIdentity, scopes: Set<String>?) -> CredentialKey? {
        let user: String
        switch strategy.credentialScope {
        case .uncached: return nil
        case .shared: user = ""
        case .perUser: user = caller.userKey
        }
        return CredentialKey(user: user, scopes: scopes.map { $0.sorted().joined(separator: " ") } ?? "*")
    }

    /// The credential ``credential(for:caller:scopes:reason:)`` would hand out now for the
    /// caller's current scope set, if it needs no plugin call (a cache hit, a fixed one, or
    /// none needed); nil otherwise. The event-loop driver's question: can this call go on
    /// without waiting?
    static func cached(for connection: Connection, caller: CallerIdentity) -> Credential? {
        guard let strategy = connection.strategy, connection.strategyContext != nil else { return Credential() }
        if let fixed = strategy.fixedCredential { return fixed }
        guard let key = key(strategy, caller: caller, scopes: connection.scopes(for: caller.userKey)),
              case .inject(let credential)? = connection.credentials.value(forKey: key)
        else { return nil }  // the async driver asks again, and counts the lookup
        connection.activity.metrics?[.cacheHits].increment()
        return credential
    }

    /// `span`: the call's credential span, told whether the cache had it.
    static func credential(
        for connection: Connection, caller: CallerIdentity, scopes: Set<String>? = nil, reason: CredentialReason = .initial, span: (any Span)? = nil
    ) async -> CredentialOutcome {
        guard let strategy = connection.strategy, let context = connection.strategyContext else {
            return .inject(Credential())
        }
        if let fixed = strategy.fixedCredential { return .inject(fixed) }
        let metrics = connection.activity.metrics
        // The plugin's work (its token exchanges), timed and counted by outcome.
        @Sendable func exchange(_ scopes: Set<String>? = scopes) async -> CredentialOutcome {
            let request = CredentialRequest(caller: caller, scopes: scopes, reason: reason)
            let started = ContinuousClock.now
            let outcome = await strategy.credential(for: request, context: context)
            if let metrics {
                let name: String
                switch outcome {
                case .inject: name = "issued"
                case .interactionRequired: name = "interaction_required"
                default: name = "failed"
                }
                metrics.exchange(strategy: connection.plan.strategy?.pluginID ?? "unknown", outcome: name, duration: ContinuousClock.now - started)
            }
            return outcome
        }
        guard let key = key(strategy, caller: caller, scopes: scopes) else { return await exchange() }
        let shared = connection.shared.map { ($0, SharedCredentialKey(connection: connection.name, user: key.user, scopes: key.scopes)) }
        if reason != .initial {
            connection.credentials.remove(key)
            // No replica may hand out a credential the upstream refused. (A step-up asks for a
            // wider scope set, another key: what another replica stored for it is good to take.)
            if reason == .refresh, let (store, sharedKey) = shared {
                do { try await store.forget(sharedKey) } catch { return SharedCredentials.unavailable }
            }
        }
        if metrics != nil || span != nil {  // a hit: a credential was there when asked (joining another call's exchange is a miss)
            let hit = connection.credentials.value(forKey: key) != nil
            (hit ? metrics?[.cacheHits] : metrics?[.cacheMisses])?.increment()
            span?.attributes["switchboard.cache"] = hit ? "hit" : "miss"
        }
        do {
            return try await connection.credentials.value(forKey: key) {
                if let (store, sharedKey) = shared {
                    // A user another replica stepped up: ask for the widened set at once, as this
                    // replica would had the step-up been its own (one read, on a miss only).
                    if scopes == nil, reason == .initial, strategy.credentialScope == .perUser,
                       let widened = try? await store.widenedScopes(connection: connection.name, user: caller.userKey), !widened.isEmpty {
                        connection.remember(scopes: widened, for: caller.userKey, share: false)
                        let wideKey = SharedCredentialKey(connection: connection.name, user: key.user, scopes: widened.sorted().joined(separator: " "))
                        return await SharedCredentials.obtain(store, key: wideKey, refreshMargin: refreshMargin, exchange: { await exchange(widened) })
                    }
                    return await SharedCredentials.obtain(store, key: sharedKey, refreshMargin: refreshMargin, exchange: { await exchange() })
                }
                let outcome = await exchange()
                guard case .inject(let credential) = outcome else { return (outcome, .none) }
                guard let expiry = credential.expiresAt else { return (outcome, .forever) }
                return (outcome, .until(expiry.addingTimeInterval(-refreshMargin)))
            }
        } catch {
            return .failed(StrategyFailure(code: "credential_failed", message: "the credential could not be obtained"))
        }
    }
}
