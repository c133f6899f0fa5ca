import Foundation
import PluginAPI

/// The second level of the credential cache, for replicas (`gateway.state`): what a connection's
/// in-process cache runs on a miss. A credential another replica stored is used as is; else one
/// replica at a time takes the key's lease and runs the exchange, and the others wait for what it
/// stores (bounded: a holder that died loses its lease when it runs out, and a waiter past
/// ``giveUpAfter`` runs its own exchange).
///
/// A hit in the process never comes here, so the warm path does not touch the store. When the
/// store cannot be reached the call is answered 503 `state_unavailable`: a replica never makes up
/// a credential the others cannot see, and never serves one it cannot tie to the caller.
enum SharedCredentials {
    static let lease: Duration = .seconds(15)
    static let poll: Duration = .milliseconds(25)
    static let giveUpAfter: Duration = .seconds(20)
    /// Longest a credential without an expiry is shared.
    static let foreverShared: TimeInterval = 3600

    static let unavailable = CredentialOutcome.failed(StrategyFailure(
        code: "state_unavailable", message: "the gateway's shared state cannot be reached; try again shortly", httpStatus: 503, retryAfter: 5))

    /// The credential for `key` and how long the process may keep it.
    static func obtain(
        _ store: any SharedStateStore, key: SharedCredentialKey, refreshMargin: TimeInterval, exchange: @Sendable () async -> CredentialOutcome
    ) async -> (CredentialOutcome, CacheLifetime) {
        func kept(_ credential: Credential) -> (CredentialOutcome, CacheLifetime) {
            (.inject(credential), credential.expiresAt.map { .until($0.addingTimeInterval(-refreshMargin)) } ?? .forever)
        }
        let started = ContinuousClock.now
        while true {
            do {
                if let found = try await store.credential(for: key) { return kept(found) }
                if try await store.acquireLease(key, for: lease) { break }
            } catch {
                return (unavailable, .none)
            }
            if ContinuousClock.now - started > giveUpAfter { return (await exchange(), .none) }
            try? await Task.sleep(for: poll)
        }
        // This replica holds the lease. Another may have stored the credential between the read
        // and the lease: look once more before exchanging.
        if let found = try? await store.credential(for: key) {
            await store.releaseLease(key)
            return kept(found)
        }
        let outcome = await exchange()
        if case .inject(let credential) = outcome {
            // Shared as long as the process keeps it: to the refresh margin before it expires.
            let until = credential.expiresAt.map { $0.addingTimeInterval(-refreshMargin) } ?? Date().addingTimeInterval(foreverShared)
            try? await store.store(credential, for: key, until: until)
        }
        await store.releaseLease(key)
        guard case .inject(let credential) = outcome else { return (outcome, .none) }
        return kept(credential)
    }
}
