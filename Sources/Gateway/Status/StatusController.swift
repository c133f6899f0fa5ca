import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PluginAPI

/// The read-only API: `/api/connections/status`, `/api/connections`, `/healthz`, `/readyz`.
struct StatusController: Sendable {
    let holder: RegistryHolder
    let clock: any GatewayClock
    let exposition: PrometheusExposition
    /// This replica's name in the shared store (``StatusSharing``); nil without replicas.
    var replica: String? = nil

    func register(on router: Router<BasicRequestContext>) {
        router.get("/healthz") { _, _ in json(["status": "ok"]) }
        router.get("/readyz") { _, _ in
            // With replicas, ready means the shared state answers: a balancer sends new calls
            // elsewhere while it does not (calls already cached here would still work).
            if let shared = holder.shared, !(await shared.isReachable()) {
                return json(["status": "unavailable", "generation": "\(holder.registry.generation)", "state": "unreachable"], status: .serviceUnavailable)
            }
            return json(["status": "ready", "generation": "\(holder.registry.generation)", "state": holder.shared == nil ? "local" : "shared"])
        }
        router.get("/api/connections/status") { request, _ in
            var doc = status(peers: await peers())
            if let authorization = request.headers[.authorization] {
                // With the user's ID token, the answer adds that user's view of each connection.
                let caller: CallerIdentity
                do throws(GatewayError) {
                    caller = try await holder.registry.authenticator.authenticate(authorization)
                } catch {
                    return error.response()
                }
                doc.user = userView(caller, shared: await sharedViews(of: caller))
            }
            return json(doc)
        }
        router.get("/metrics") { _, _ in metrics() }
        router.get("/api/connections") { request, _ in
            let kind = request.uri.queryParameters["kind"].map(String.init)
            if let kind, ConnectionKind(rawValue: kind) == nil {
                return GatewayError(code: "invalid_request", status: .badRequest, message: "unknown kind '\(kind)'").response()
            }
            return json(list(kind: kind))
        }
    }

    /// The other replicas' activities (`gateway.state`); none without replicas, or when the store
    /// does not answer (this replica's own view is shown then).
    func peers() async -> [String: [ConnectionActivity.Snapshot]] {
        guard let store = holder.shared, let replica,
              let published = try? await store.peerActivity(excluding: replica, within: StatusSharing.peerWindow)
        else { return [:] }
        let decoder = JSONDecoder()
        return published.mapValues { $0.compactMap { try? decoder.decode(ConnectionActivity.Snapshot.self, from: $0) } }
    }

    /// A user's views as any replica published them.
    func sharedViews(of caller: CallerIdentity) async -> [String: ConnectionActivity.UserView] {
        guard let store = holder.shared, let views = try? await store.userViews(caller.userKey) else { return [:] }
        let decoder = JSONDecoder()
        return views.compactMapValues { try? decoder.decode(ConnectionActivity.UserView.self, from: $0) }
    }

    func status(peers: [String: [ConnectionActivity.Snapshot]] = [:]) -> StatusDocument {
        let registry = holder.registry
        let state = holder.state
        let now = clock.now()
        let problem = state.lastError.map { errors in
            StatusDocument.ConfigProblem(
                at: state.lastErrorAt, message: errors.description,
                errors: errors.errors.map { .init(file: $0.file, line: $0.location?.line, column: $0.location?.column, message: $0.message, hint: $0.hint) })
        }
        let config = StatusDocument.ConfigInfo(
            path: holder.configPath, loadedAt: registry.loadedAt, generation: registry.generation,
            lastReloadAttemptAt: state.lastAttemptAt, lastError: problem, watch: registry.settings.watch)
        let connections = registry.connections.map { c in
            Self.status(of: c, registry: registry, now: now, snapshot: ConnectionActivity.merged(c.activity.snapshot, with: peers[c.name] ?? []))
        }
        return StatusDocument(config: config, connections: connections)
    }

    static func status(of c: Connection, registry: Registry, now: Date, snapshot: ConnectionActivity.Snapshot? = nil) -> StatusDocument.ConnectionStatus {
        let snap = snapshot ?? c.activity.snapshot
        let d = c.descriptor
        var status: String
        var reason: String?
        if !c.enabled {
            status = "DISABLED"
            reason = c.plan.disabledReason
        } else if snap.lastAttemptSucceeded == true {
            if let exp = snap.credentialExpiresAt, exp <= now {
                status = "IDLE"
                reason = d.kind == .authorizationServer ? "no_recent_activity" : "credential_expired"
            } else {
                status = "LIVE"
            }
        } else if snap.lastAttemptSucceeded == false, snap.lastFailure?.code == "interaction_required" {
            status = "IDLE"
            reason = "consent_required"
        } else if snap.lastAttemptSucceeded == false {
            status = "ERROR"
            reason = snap.lastFailure?.code
        } else {
            status = "IDLE"
            reason = d.kind == .authorizationServer ? "no_activity" : "no_traffic_yet"
        }
        let pluginDetails = c.strategy?.statusDetails ?? [:]
        let details = StatusDocument.Details(
            upstream: d.upstream, route: d.route, resourceIndicator: d.resourceIndicator, issuer: d.issuer,
            authorizationServer: pluginDetails["authorization_server"], agentID: c.plan.strategy == nil ? nil : registry.plan.agent?.id,
            registrationID: d.registrationID, credentialExpiresAt: snap.credentialExpiresAt,
            plugin: pluginDetails.isEmpty ? nil : pluginDetails)
        return StatusDocument.ConnectionStatus(
            name: d.name, kind: d.kind.rawValue, title: d.title, strategy: c.plan.strategy?.pluginID, enabled: c.enabled,
            status: status, reason: reason, details: details, lastSuccessAt: snap.lastSuccessAt,
            lastError: snap.lastFailure.map { .init(at: $0.at, code: $0.code, message: $0.message) },
            counts: .init(requests: snap.requests, failures: snap.failures, upstreamErrors: snap.upstreamErrors, stepUps: snap.stepUps, denied: snap.denied, rateLimited: snap.rateLimited))
    }

    /// `shared`: the user's views other replicas published (the newest of each is shown).
    func userView(_ caller: CallerIdentity, shared: [String: ConnectionActivity.UserView] = [:]) -> StatusDocument.UserView {
        let registry = holder.registry
        let now = clock.now()
        return StatusDocument.UserView(subject: caller.subject, connections: registry.connections.compactMap { c in
            let own = c.activity.user(caller.userKey)
            let other = shared[c.name]
            guard c.tracksUsers, let v = (own.map { o in other.map { $0.at > o.at ? $0 : o } ?? o } ?? other) else { return nil }
            var state = v.state
            if state == "live", let exp = v.credentialExpiresAt, exp <= now { state = "expired" }
            return .init(name: c.name, state: state, at: v.at, interactionURI: v.interactionURI, credentialExpiresAt: v.credentialExpiresAt, error: v.error)
        })
    }

    /// Prometheus text (format 0.0.4): the counters and histograms kept as calls happen, and
    /// the gauges read now. Names and labels: README, "Metrics".
    func metrics() -> Response {
        let registry = holder.registry
        let now = clock.now()
        let connections = registry.connections.map { c in (name: c.name, live: Self.status(of: c, registry: registry, now: now).status == "LIVE", metrics: c.activity.metrics) }
        let text = exposition.render(generation: registry.generation, connections: connections)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: text)))
    }

    struct Listing: Encodable {
        struct Item: Encodable {
            var name: String
            var kind: String
            var title: String
            var route: String?
            var enabled: Bool
            var status: String
        }
        var connections: [Item]
    }

    func list(kind: String?) -> Listing {
        let registry = holder.registry
        let now = clock.now()
        return Listing(connections: registry.connections.compactMap { c in
            if let kind, c.descriptor.kind.rawValue != kind { return nil }
            let s = Self.status(of: c, registry: registry, now: now)
            return .init(name: c.name, kind: s.kind, title: s.title, route: c.descriptor.route, enabled: c.enabled, status: s.status)
        })
    }
}

/// Encodes a value as a JSON response (ISO 8601 dates, sorted keys).
func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    encoder.outputFormatting = [.sortedKeys]
    let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    headers[.cacheControl] = "no-store"
    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}
