import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OAuthCore

/// `GET /api/audit`: the trail for an operator holding `gateway.audit.admin_token` (read from
/// the registry serving now, so a reload rotates it); off (404) when no token is configured,
/// 401 for any other token. Filters as `switchboard audit`:
/// `user` (sub or email), `connection`, `tool`, `decision`, `since` (seconds since 1970), `limit`.
struct AuditAPI: Sendable {
    let audit: AuditLog?
    let holder: RegistryHolder

    func register(on router: Router<BasicRequestContext>) {
        router.get("/api/audit") { request, _ in respond(request) }
    }

    func respond(_ request: Request) -> Response {
        guard let adminToken = holder.registry.settings.audit?.adminToken?.reveal(), !adminToken.isEmpty, let store = audit?.currentStore else {
            return GatewayError(code: "not_found", status: .notFound, message: "the audit API is off: set gateway.audit.admin_token").response()
        }
        let presented = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil } ?? ""
        guard constantTimeEquals(presented, adminToken) else {
            var e = GatewayError(code: "invalid_admin_token", status: .unauthorized, message: "this API needs 'Authorization: Bearer <gateway.audit.admin_token>'")
            e.headers[.wwwAuthenticate] = "Bearer"
            return e.response()
        }
        let q = request.uri.queryParameters
        let query = AuditQuery(
            user: q["user"].map(String.init), connection: q["connection"].map(String.init), tool: q["tool"].map(String.init),
            decision: q["decision"].map(String.init), since: q["since"].flatMap { Double(String($0)) }, limit: q["limit"].flatMap { Int(String($0)) } ?? 1000)
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let body = try encoder.encode(["records": try store.query(query)])
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        } catch {
            return GatewayError.internalError(nil).response()
        }
    }
}
