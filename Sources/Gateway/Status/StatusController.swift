import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PluginAPI

/// The read-only API: `/api/connections/status`, `/api/connections`, `/healthz`, `/readyz`.
struct StatusController: Sendable {
    let holder: RegistryHolder
    let clock: any GatewayClock

    func register(on router: Router<BasicRequestContext>) {
        router.get("/healthz") { _, _ in json(["status": "ok"]) }
        router.get("/readyz") { _, _ in
            json(["status": "ready", "generation": "\(holder.registry.generation)"])
        }
        router.get("/api/connections/status") { _, _ in
            json(status())
        }
        router.get("/api/connections") { request, _ in
            let kind = request.uri.queryParameters["kind"].map(String.init)
            if let kind, ConnectionKind(rawValue: kind) == nil {
                return GatewayError(code: "invalid_request", status: .badRequest, message: "unknown kind '\(kind)'").response()
            }
            return json(list(kind: kind))
        }
    }

    func status() -> StatusDocument {
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
        let connections = registry.connections.map { c in Self.status(of: c, registry: registry, now: now) }
        return StatusDocument(config: config, connections: connections)
    }

    static func status(of c: Connection, registry: Registry, now: Date) -> StatusDocument.ConnectionStatus {
        let snap = c.activity.snapshot
        let d = c.descriptor
        var status: String
        var reason: String?
        if !c.enabled {
            status = "DISABLED"
            reason = c.plan.disabledReason
        } else if snap.lastAttemptSucceeded == true {
            if let exp = snap.credentialExpiresAt, exp <= now {
                status = "IDLE"
                reason = "credential_expired"
            } else {
                status = "LIVE"
            }
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
            counts: .init(requests: snap.requests, failures: snap.failures, upstreamErrors: snap.upstreamErrors, stepUps: snap.stepUps))
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
