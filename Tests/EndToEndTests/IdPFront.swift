import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import Synchronization

/// A reverse proxy in front of the identity provider that records every token request.
///
/// The IdP is started with its issuer set to this proxy's URL, so every party (gateway,
/// todo0, ISV, the test's browser) reaches the IdP through here, and a test can count the
/// token exchanges the gateway really made.
final class IdPFront: Sendable {
    /// One `POST …/token` that went through.
    struct TokenRequest: Sendable {
        var path: String
        var grantType: String?
        var requestedTokenType: String?
        var status: Int
    }

    static let idJAGType = "urn:ietf:params:oauth:token-type:id-jag"
    static let stsType = "urn:okta:params:oauth:token-type:oauth-sts"
    static let jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

    /// Follows no redirect: the IdP's 302s go back to the caller as they are.
    static let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: .init(redirectConfiguration: .disallow))

    private let backend = Mutex<String?>(nil)
    private let log = Mutex<[TokenRequest]>([])

    /// Where to forward (`http://127.0.0.1:<IdP port>`), known once the IdP listens.
    func setBackend(_ url: String) { backend.withLock { $0 = url } }

    var tokenRequests: [TokenRequest] { log.withLock { $0 } }

    /// Token exchanges for an ID-JAG at the org AS (whatever the IdP answered).
    var idJAGExchanges: Int { tokenRequests.filter { $0.path == "/oauth2/v1/token" && $0.requestedTokenType == Self.idJAGType }.count }
    /// OAuth STS token exchanges at the org AS.
    var stsExchanges: Int { tokenRequests.filter { $0.path == "/oauth2/v1/token" && $0.requestedTokenType == Self.stsType }.count }
    /// JWT-bearer grants at the todo-mcp authorization server.
    var jwtBearerGrants: Int { tokenRequests.filter { $0.path == "/oauth2/todo-mcp/v1/token" && $0.grantType == Self.jwtBearerGrant }.count }

    func forward(_ request: Request) async throws -> Response {
        guard let base = backend.withLock({ $0 }) else {
            return Response(status: .serviceUnavailable, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "no backend yet")))
        }
        let body = try await request.body.collect(upTo: 4 << 20)
        var upstream = HTTPClientRequest(url: base + request.uri.string)
        upstream.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headers {
            let name = field.name.canonicalName
            if ["host", "content-length", "connection", "transfer-encoding", "keep-alive"].contains(name) { continue }
            upstream.headers.add(name: field.name.rawName, value: field.value)
        }
        if body.readableBytes > 0 { upstream.body = .bytes(body) }
        let response = try await Self.client.execute(upstream, timeout: .seconds(30))
        let answer = try await response.body.collect(upTo: 4 << 20)
        let status = Int(response.status.code)

        let path = request.uri.path
        if request.method == .post, path.hasSuffix("/token") {
            let form = Self.parseForm(String(buffer: body))
            log.withLock {
                $0.append(TokenRequest(path: path, grantType: form["grant_type"], requestedTokenType: form["requested_token_type"], status: status))
            }
        }
        var headers = HTTPFields()
        for header in response.headers {
            let lower = header.name.lowercased()
            if ["content-length", "connection", "transfer-encoding", "keep-alive"].contains(lower) { continue }
            if let name = HTTPField.Name(header.name) { headers.append(HTTPField(name: name, value: header.value)) }
        }
        return Response(status: HTTPResponse.Status(code: status), headers: headers, body: .init(byteBuffer: answer))
    }

    static func parseForm(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
            out[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return out
    }
}

/// Serves every request through an ``IdPFront``.
struct IdPFrontResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let front: IdPFront

    func respond(to request: Request, context: BasicRequestContext) async throws -> Response {
        try await front.forward(request)
    }
}
