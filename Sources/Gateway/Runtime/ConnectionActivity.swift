import Foundation
import Synchronization

/// What happened on one connection lately: the facts behind LIVE / IDLE in the status.
///
/// One per connection name, carried over across reloads while the name stays. Updated on
/// every proxied request under a short lock; read by the status endpoint.
final class ConnectionActivity: Sendable {
    struct Failure: Sendable, Equatable {
        var at: Date
        var code: String
        var message: String
    }

    struct Snapshot: Sendable {
        var requests: Int = 0
        var failures: Int = 0
        var upstreamErrors: Int = 0
        var stepUps: Int = 0
        /// Calls a policy refused, and calls over a rate limit (the panel shows both).
        var denied: Int = 0
        var rateLimited: Int = 0
        var lastSuccessAt: Date?
        var lastFailure: Failure?
        /// When the credential used by the last successful call expires (nil: never).
        var credentialExpiresAt: Date?
        /// Whether the last attempt succeeded.
        var lastAttemptSucceeded: Bool?
    }

    /// One user's view of this connection (for the status endpoint with a user token).
    struct UserView: Sendable {
        var state: String  // "live", "consent_required", "error"
        var at: Date
        var interactionURI: String?
        var credentialExpiresAt: Date?
        var error: String?
    }

    /// The same events as Prometheus series (`/metrics`); nil where nothing exports them (tests).
    let metrics: ConnectionMetrics?

    init(metrics: ConnectionMetrics? = nil) { self.metrics = metrics }

    private let state = Mutex(Snapshot())
    private let users = Mutex<[String: UserView]>([:])
    static let maxUsers = 10_000

    func user(_ key: String) -> UserView? { users.withLock { $0[key] } }

    func recordUser(_ key: String, _ view: UserView) {
        users.withLock { u in
            if u.count >= Self.maxUsers, u[key] == nil, let oldest = u.min(by: { $0.value.at < $1.value.at })?.key { u[oldest] = nil }
            u[key] = view
        }
    }

    var snapshot: Snapshot { state.withLock { $0 } }

    func recordSuccess(at: Date, credentialExpiresAt: Date?) {
        state.withLock {
            $0.requests += 1
            $0.lastSuccessAt = at
            $0.credentialExpiresAt = credentialExpiresAt
            $0.lastAttemptSucceeded = true
        }
    }

    /// A request that the gateway or the upstream failed (5xx, auth errors).
    func recordFailure(at: Date, code: String, message: String, upstream: Bool) {
        if let metrics {
            metrics.failures.increment()
            if upstream { metrics.upstreamErrors.increment() }
            if code == "interaction_required" { metrics.consentPrompts.increment() }
        }
        state.withLock {
            $0.requests += 1
            $0.failures += 1
            if upstream { $0.upstreamErrors += 1 }
            $0.lastFailure = Failure(at: at, code: code, message: message)
            $0.lastAttemptSucceeded = false
        }
    }

    func recordStepUp() {
        metrics?.stepUps.increment()
        state.withLock { $0.stepUps += 1 }
    }

    func recordDenied() {
        metrics?.policyDenials.increment()
        state.withLock { $0.denied += 1 }
    }

    func recordRateLimited() {
        metrics?.rateLimited.increment()
        state.withLock { $0.rateLimited += 1 }
    }

    /// The connection was used through another one (e.g. an ID-JAG minted through this AS).
    func recordUse(at: Date, validUntil: Date?) {
        state.withLock {
            $0.lastSuccessAt = at
            $0.credentialExpiresAt = validUntil
            $0.lastAttemptSucceeded = true
        }
    }
}
