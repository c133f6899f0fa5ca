import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An RFC 6749 / 8693 error answer: `{"error", "error_description"}` (+ extra fields), with
/// `Cache-Control: no-store`. Descriptions say what to fix and never echo a token.
struct OAuthError: Error, Sendable {
    var error: String
    var description: String
    var status: HTTPResponse.Status = .badRequest
    var extra: [String: String] = [:]

    static func invalidRequest(_ d: String) -> OAuthError { OAuthError(error: "invalid_request", description: d) }
    static func invalidClient(_ d: String) -> OAuthError { OAuthError(error: "invalid_client", description: d, status: .unauthorized) }
    static func invalidGrant(_ d: String) -> OAuthError { OAuthError(error: "invalid_grant", description: d) }
    static func invalidTarget(_ d: String) -> OAuthError { OAuthError(error: "invalid_target", description: d) }
    static func invalidScope(_ d: String) -> OAuthError { OAuthError(error: "invalid_scope", description: d) }
    static func unsupportedGrantType(_ d: String) -> OAuthError { OAuthError(error: "unsupported_grant_type", description: d) }
    static func invalidToken(_ d: String) -> OAuthError { OAuthError(error: "invalid_token", description: d, status: .unauthorized) }

    func response() -> Response {
        var body = extra
        body["error"] = error
        body["error_description"] = description
        var headers = HTTPFields()
        if status == .unauthorized, error == "invalid_client" { headers[.wwwAuthenticate] = "Basic realm=\"switchboard-idp\"" }
        if error == "invalid_token" { headers[.wwwAuthenticate] = "Bearer error=\"invalid_token\", error_description=\"\(description.replacingOccurrences(of: "\"", with: "'"))\"" }
        return jsonResponse(body, status: status, headers: headers)
    }
}

/// A JSON response with `Cache-Control: no-store` (every token endpoint answer).
func jsonResponse(_ object: [String: any Sendable], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    var h = headers
    h[.contentType] = "application/json"
    h[.cacheControl] = "no-store"
    h[HTTPField.Name("Pragma")!] = "no-cache"
    return Response(status: status, headers: h, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}

/// An `application/x-www-form-urlencoded` body (or query string), parsed.
struct FormFields: Sendable {
    private(set) var pairs: [(String, String)] = []

    init(_ text: String) {
        for part in text.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let k = Self.decode(kv[0])
            let v = kv.count > 1 ? Self.decode(kv[1]) : ""
            pairs.append((k, v))
        }
    }

    static func decode(_ s: Substring) -> String {
        s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s)
    }

    subscript(_ name: String) -> String? { pairs.first { $0.0 == name }?.1 }

    /// The single value of `name`; a repeated parameter is an error (RFC 6749 §3.1).
    func single(_ name: String) throws(OAuthError) -> String? {
        let values = pairs.filter { $0.0 == name }
        if values.count > 1 { throw OAuthError.invalidRequest("parameter '\(name)' is repeated") }
        return values.first.map { $0.1 }
    }

    func required(_ name: String) throws(OAuthError) -> String {
        guard let v = try single(name), !v.isEmpty else { throw OAuthError.invalidRequest("missing parameter '\(name)'") }
        return v
    }

    static func read(_ request: Request, limit: Int = 64 * 1024) async throws(OAuthError) -> FormFields {
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/x-www-form-urlencoded") {
            throw OAuthError.invalidRequest("the body must be application/x-www-form-urlencoded")
        }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return FormFields(String(buffer: buffer))
        } catch {
            throw OAuthError.invalidRequest("the request body is too large or unreadable")
        }
    }
}
