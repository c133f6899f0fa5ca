public import AsyncHTTPClient
import Foundation
public import NIOCore

/// A successful token endpoint answer (RFC 6749 §5.1 / RFC 8693 §2.2.1).
public struct TokenResponse: Sendable, Decodable {
    public var accessToken: String
    public var tokenType: String?
    public var expiresIn: Int?
    public var scope: String?
    public var issuedTokenType: String?
    /// OIDC: the ID token of an authorization-code answer.
    public var idToken: String?

    enum CodingKeys: String, CodingKey {
        case idToken = "id_token"
        case accessToken = "access_token"
        case tokenType = "token_type"
        case expiresIn = "expires_in"
        case scope
        case issuedTokenType = "issued_token_type"
    }

    /// Scopes granted (space-separated `scope`), or `fallback` when the server did not say.
    public func grantedScopes(fallback: Set<String>) -> Set<String> {
        guard let scope, !scope.isEmpty else { return fallback }
        return Set(scope.split(separator: " ").map(String.init))
    }
}

/// Why a token request failed. `oauthError` carries the server's `error` code when it
/// answered in the RFC 6749 shape.
public enum TokenEndpointError: Error, Sendable, CustomStringConvertible {
    /// The server could not be reached (connection refused, timeout).
    case unreachable(String)
    /// The server answered an OAuth error (`error`, `error_description`, extra fields such as `interaction_uri`).
    case oauth(status: Int, error: String, description: String?, interactionURI: String?)
    /// The server answered something that is not a token response.
    case malformed(status: Int, String)

    public var description: String {
        switch self {
        case .unreachable(let why): return "unreachable: \(why)"
        case .oauth(let status, let error, let d, _): return "\(status) \(error)\(d.map { ": \($0)" } ?? "")"
        case .malformed(let status, let why): return "malformed answer (\(status)): \(why)"
        }
    }
}

/// Posts form-encoded token requests and reads the answers. Never logs the form: it holds
/// subject tokens and client assertions.
public struct TokenEndpointClient: Sendable {
    let httpClient: HTTPClient
    let timeout: TimeAmount

    public init(httpClient: HTTPClient, timeout: TimeAmount = .seconds(10)) {
        self.httpClient = httpClient
        self.timeout = timeout
    }

    /// `headers`: extra request headers, e.g. `Authorization: Basic …` for client_secret_basic.
    public func request(_ endpoint: String, form: [(String, String)], headers: [(String, String)] = []) async throws(TokenEndpointError) -> TokenResponse {
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        request.body = .bytes(ByteBuffer(string: Self.encode(form)))
        let status: Int
        let body: ByteBuffer
        do {
            let response = try await httpClient.execute(request, timeout: timeout)
            status = Int(response.status.code)
            body = try await response.body.collect(upTo: 256 * 1024)
        } catch {
            throw .unreachable("\(type(of: error))")
        }
        let data = Data(body.readableBytesView)
        if status == 200 {
            guard let token = try? JSONDecoder().decode(TokenResponse.self, from: data), !token.accessToken.isEmpty else {
                throw .malformed(status: status, "no access_token in the answer")
            }
            return token
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], let error = object["error"] as? String else {
            throw .malformed(status: status, "not an OAuth error answer")
        }
        throw .oauth(status: status, error: error, description: object["error_description"] as? String, interactionURI: object["interaction_uri"] as? String)
    }

    /// Fetches an authorization server's metadata (`{issuer}/.well-known/oauth-authorization-server`,
    /// then `openid-configuration`) and returns its `token_endpoint`; the document's `issuer`
    /// must be `issuer`.
    public func tokenEndpoint(issuer: String) async throws(TokenEndpointError) -> String {
        let base = issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer
        var last: TokenEndpointError = .malformed(status: 0, "no metadata")
        for path in ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"] {
            do {
                let response = try await httpClient.execute(HTTPClientRequest(url: base + path), timeout: timeout)
                let body = try await response.body.collect(upTo: 256 * 1024)
                guard response.status == .ok else {
                    last = .malformed(status: Int(response.status.code), "metadata not found at \(path)")
                    continue
                }
                guard let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any],
                      let endpoint = object["token_endpoint"] as? String, object["issuer"] as? String == issuer
                else {
                    last = .malformed(status: 200, "metadata at \(path) has no token_endpoint for issuer \(issuer)")
                    continue
                }
                return endpoint
            } catch {
                last = .unreachable("\(type(of: error))")
            }
        }
        throw last
    }

    /// `application/x-www-form-urlencoded` (RFC 6749 appendix B; also the query of a redirect).
    public static func encode(_ form: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return form.map { "\($0.0.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }
            .joined(separator: "&")
    }
}
