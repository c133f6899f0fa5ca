import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An error agent0 answers with: a stable `error` code, an HTTP status and a sentence safe to
/// show. Never a token, never a stack trace.
struct AgentError: Error, Sendable {
    var code: String
    var status: HTTPResponse.Status
    var message: String

    static let notSignedIn = AgentError(code: "not_signed_in", status: .unauthorized, message: "sign in first")
    static let sessionExpired = AgentError(code: "session_expired", status: .unauthorized, message: "your session has ended; sign in again")
    static let csrfFailed = AgentError(code: "csrf_failed", status: .forbidden, message: "the request lacks this page's CSRF token or comes from another origin")
    static func invalidRequest(_ why: String) -> AgentError { AgentError(code: "invalid_request", status: .badRequest, message: why) }

    func response() -> Response {
        jsonResponse(["error": code, "message": message], status: status)
    }
}

/// A JSON answer (`Cache-Control: no-store`: everything here is per user).
func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let data = (try? encoder.encode(value)) ?? Data("{\"error\":\"internal_error\"}".utf8)
    var headers = extra
    headers[.contentType] = "application/json"
    headers[.cacheControl] = "no-store"
    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}
