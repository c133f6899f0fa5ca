import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An error the gateway itself answers with: a stable `code` (the JSON `error` field and a
/// metrics label), an HTTP status and a message safe to show. Never a token, never a trace.
struct GatewayError: Error, Sendable {
    var code: String
    var status: HTTPResponse.Status
    var message: String
    var connection: String?
    /// Extra JSON string fields (`interaction_uri`, `detail`).
    var extra: [String: String] = [:]
    var headers: HTTPFields = [:]
    /// For an MCP POST: the request's JSON-RPC id; the body then is a JSON-RPC error object
    /// (so an MCP client can surface it) that also carries the gateway fields.
    var jsonRPCID: String?

    static func unknownConnection(_ route: String) -> GatewayError {
        GatewayError(code: "unknown_connection", status: .notFound, message: "no connection is routed at '\(route)'")
    }
    static func notFound() -> GatewayError {
        GatewayError(code: "not_found", status: .notFound, message: "no such endpoint")
    }
    static func disabled(_ name: String, reason: String?) -> GatewayError {
        GatewayError(code: "connection_disabled", status: .forbidden, message: "connection '\(name)' is disabled (\(reason ?? "disabled"))", connection: name)
    }
    static func invalidPath(_ why: String, connection: String? = nil) -> GatewayError {
        GatewayError(code: "invalid_path", status: .badRequest, message: why, connection: connection)
    }
    static func methodNotAllowed(_ method: HTTPRequest.Method, allowed: String, connection: String) -> GatewayError {
        var e = GatewayError(code: "method_not_allowed", status: .methodNotAllowed, message: "\(method.rawValue) is not allowed on an MCP route", connection: connection)
        e.headers[.allow] = allowed
        return e
    }
    static func invalidUserToken(_ why: String, errorParam: String = "invalid_token") -> GatewayError {
        var e = GatewayError(code: "invalid_user_token", status: .unauthorized, message: why)
        let safe = why.replacingOccurrences(of: "\"", with: "'")
        e.headers[.wwwAuthenticate] = "Bearer realm=\"switchboard\", error=\"\(errorParam)\", error_description=\"\(safe)\""
        if errorParam == "invalid_request" { e.headers[.wwwAuthenticate] = "Bearer realm=\"switchboard\"" }
        return e
    }
    static func payloadTooLarge(limit: Int, connection: String) -> GatewayError {
        GatewayError(code: "payload_too_large", status: .contentTooLarge, message: "request body exceeds \(limit) bytes", connection: connection)
    }
    static func headersTooLarge(_ why: String) -> GatewayError {
        GatewayError(code: "headers_too_large", status: .requestHeaderFieldsTooLarge, message: why)
    }
    static func upstreamUnreachable(_ connection: String) -> GatewayError {
        GatewayError(code: "upstream_unreachable", status: .badGateway, message: "the upstream of '\(connection)' could not be reached", connection: connection)
    }
    static func upstreamTimeout(_ connection: String) -> GatewayError {
        GatewayError(code: "upstream_timeout", status: .gatewayTimeout, message: "the upstream of '\(connection)' did not answer in time", connection: connection)
    }
    static func internalError(_ connection: String?) -> GatewayError {
        GatewayError(code: "internal_error", status: .internalServerError, message: "the gateway failed to handle the request", connection: connection)
    }

    /// The JSON response: `{"error", "message", "connection"?, …extra}`.
    func response() -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        fields[.cacheControl] = "no-store"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body())))
    }

    /// The JSON body of ``response()``.
    func body() -> Data {
        var object: [String: Any] = extra
        object["error"] = code
        object["message"] = message
        if let connection { object["connection"] = connection }
        if let jsonRPCID {
            var detail = extra as [String: Any]
            detail["error"] = code
            if let connection { detail["connection"] = connection }
            let id: Any = (try? JSONSerialization.jsonObject(with: Data(jsonRPCID.utf8), options: [.fragmentsAllowed])) ?? NSNull()
            object["jsonrpc"] = "2.0"
            object["id"] = id
            object["error"] = ["code": -32001, "message": message, "data": detail] as [String: Any]
        }
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{\"error\":\"internal_error\"}".utf8)
    }
}
