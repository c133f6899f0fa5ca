import HTTPTypes
import Hummingbird

/// Puts the security headers on every answer, the router's own 404s and errors included, and
/// turns an empty 404 into JSON.
struct SecurityHeadersResponder<Inner: HTTPResponder>: HTTPResponder where Inner.Context == BasicRequestContext {
    let inner: Inner

    /// No inline script or style, nothing from elsewhere; the page talks only to agent0.
    static var contentSecurityPolicy: String {
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; "
            + "manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    }

    func respond(to request: Request, context: BasicRequestContext) async throws -> Response {
        var response: Response
        do {
            response = try await inner.respond(to: request, context: context)
        } catch let error as HTTPError {
            response = AgentError(code: error.status == .notFound ? "not_found" : "invalid_request", status: error.status, message: error.body ?? "\(error.status.reasonPhrase)").response()
        } catch {
            response = AgentError(code: "internal_error", status: .internalServerError, message: "agent0 failed to handle the request").response()
        }
        if response.status == .notFound, response.body.contentLength == 0 {
            response = AgentError(code: "not_found", status: .notFound, message: "no such page or endpoint (or not with \(request.method.rawValue))").response()
        }
        response.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        // Popups (the consent page) keep their opener, so the page can see them close.
        response.headers[HTTPField.Name("Cross-Origin-Opener-Policy")!] = "same-origin-allow-popups"
        response.headers[HTTPField.Name("Cross-Origin-Resource-Policy")!] = "same-origin"
        response.headers[HTTPField.Name("Permissions-Policy")!] = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
        return response
    }
}
