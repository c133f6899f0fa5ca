import Foundation
import Synchronization

/// What happened on one connection lately: the facts behind LIVE / IDLE in the status.
///
/// One per connection name, carried over across reloads while the name stays. Updated on
/// every proxied request under a short lock; read by the status endpoint.
final class ConnectionActivity: Sendable {
    struct Failure: Sendable, Equatable, Codable {
        var at: Date
        var code: String
        var message: String
    }

    struct Snapshot: Sendable, Codable {
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
    struct UserView: Sendable, Codable {
        var state: String  // "live", "consent_required", "error"
        var at: Date
        var interactionURI: String?
        var credentialExpiresAt: Date?
        var error: String?

        /// What a change is judged by (not `at`, which every call moves).
        var digest: Int {
            var h = Hasher()
            h.combine(state)
            h.combine(interactionURI)
            h.combine(credentialExpiresAt)
            h.combine(error)
            return h.finalize()
        }
    }

    /// The same events as Prometheus series (`/metrics`); nil where nothing exports them (tests).
    let metrics: ConnectionMetrics?

    /// `shared`: replicas share state (`gateway.state`), so users' views that change are kept
    /// for ``StatusSharing`` to publish.
    init(metrics: ConnectionMetrics? = nil, shared: Bool = false) {
        self.metrics = metrics
        self.tracksChanges = shared
    }

    private let state = Mutex(Snapshot())
    private let users = Mutex<[String: UserView]>([:])
    /// Users whose view changed (its state, credential expiry or interaction) since the last
    /// publication; kept only with replicas (`tracksChanges`).
    private let changedUsers = Mutex<[String: UserView]>([:])
    private let tracksChanges: Bool
    /// What was last published per user (a digest, by the user's hash): a view is published again
    /// only when it changed. Apart from `users` (10,000, evicting): with many more active users a
    /// user evicted there would otherwise count as changed on every call.
    private let published = Mutex<[Int: Int]>([:])
    static let maxPublished = 200_000
    static let maxUsers = 10_000

    func user(_ key: String) -> UserView? { users.withLock { $0[key] } }

    func recordUser(_ key: String, _ view: UserView) {
        users.withLock { u in
            if u.count >= Self.maxUsers, u[key] == nil, let oldest = u.min(by: { $0.value.at < $1.value.at })?.key { u[oldest] = nil }
            u[key] = view
        }
        guard tracksChanges else { return }
        let digest = view.digest
        if published.withLock({ $0[key.hashValue] }) != digest { changedUsers.withLock { $0[key] = view } }
    }

    /// The changed views, handed over once (``StatusSharing``); `requeue` puts back those a
    /// publication could not deliver (unless a newer one came meanwhile).
    func takeChangedUsers() -> [String: UserView] { changedUsers.withLock { c in defer { c = [:] }; return c } }
    /// The views a publication delivered: not published again until they change.
    func markPublished(_ views: [String: UserView]) {
        published.withLock { p in
            if p.count + views.count > Self.maxPublished { p.removeAll(keepingCapacity: true) }
            for (k, v) in views { p[k.hashValue] = v.digest }
        }
    }
    func requeue(_ views: [String: UserView]) {
        changedUsers.withLock { c in for (k, v) in views where c[k] == nil { c[k] = v } }
    }

    var snapshot: Snapshot { state.withLock { $0 } }

    /// This replica's snapshot with other replicas' (`gateway.state`): counts added, the latest
    /// success and failure kept, and whether the latest attempt anywhere succeeded.
    static func merged(_ own: Snapshot, with others: [Snapshot]) -> Snapshot {
        var m = own
        for o in others {
            m.requests += o.requests
            m.failures += o.failures
            m.upstreamErrors += o.upstreamErrors
            m.stepUps += o.stepUps
            m.denied += o.denied
            m.rateLimited += o.rateLimited
            if let at = o.lastSuccessAt, at > (m.lastSuccessAt ?? .distantPast) {
                m.lastSuccessAt = at
                m.credentialExpiresAt = o.credentialExpiresAt
            }
            if let f = o.lastFailure, f.at > (m.lastFailure?.at ?? .distantPast) { m.lastFailure = f }
        }
        if !others.isEmpty, m.lastSuccessAt != nil || m.lastFailure != nil {
            m.lastAttemptSucceeded = (m.lastSuccessAt ?? .distantPast) >= (m.lastFailure?.at ?? .distantPast)
        }
        return m
    }

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
            metrics[.failures].increment()
            if upstream { metrics[.upstreamErrors].increment() }
            if code == "interaction_required" { metrics[.consentPrompts].increment() }
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
        metrics?[.stepUps].increment()
        state.withLock { $0.stepUps += 1 }
    }

    func recordDenied() {
        metrics?[.policyDenials].increment()
        state.withLock { $0.denied += 1 }
    }

    func recordRateLimited() {
        metrics?[.rateLimited].increment()
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
