import AsyncHTTPClient
import Foundation
@testable import IdentityProvider
import NIOCore
import NIOHTTP1
import OAuthCore

/// One HTTP answer.
struct Answer: Sendable, CustomStringConvertible {
    var status: Int
    var headers: HTTPHeaders
    var body: String

    func header(_ name: String) -> String? { headers.first(name: name) }
    /// The body as a JSON object (empty when it is not one).
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
    /// The JSON-RPC `result` of an MCP answer.
    var result: [String: Any]? { json["result"] as? [String: Any] }
    var description: String { "HTTP \(status) \(header("Content-Type") ?? "-"): \(body.prefix(800))" }
}

/// A signed-in user: the ID token the agent sends to the gateway, and the IdP session cookie
/// of their browser (for consent pages).
struct SignedInUser: Sendable {
    var username: String
    var idToken: String
    var cookie: String
}

extension EndToEnd {
    /// Follows no redirect: the sign-in flow looks at the 302s itself.
    static let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: .init(redirectConfiguration: .disallow))

    static func send(_ method: HTTPMethod, _ url: String, headers: [(String, String)] = [], body: String? = nil) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await client.execute(request, timeout: .seconds(30))
        let data = try await response.body.collect(upTo: 8 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers, body: String(buffer: data))
    }

    static func form(_ fields: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return fields.map { "\($0.0.addingPercentEncoding(withAllowedCharacters: allowed)!)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed)!)" }
            .joined(separator: "&")
    }

    static func postForm(_ url: String, _ fields: [(String, String)], headers: [(String, String)] = []) async throws -> Answer {
        try await send(.POST, url, headers: [("Content-Type", "application/x-www-form-urlencoded")] + headers, body: form(fields))
    }

    // MARK: the gateway

    /// A request to the gateway with the user's ID token.
    func gateway(_ method: HTTPMethod, _ path: String, token: String?, headers: [(String, String)] = [], body: String? = nil) async throws -> Answer {
        var all = headers
        if let token { all.append(("Authorization", "Bearer " + token)) }
        return try await Self.send(method, gatewayURL + path, headers: all, body: body)
    }

    /// An MCP 2026-07-28 stateless `tools/call` through `/mcp/{connection}`.
    func callTool(_ connection: String, _ tool: String, _ arguments: [String: any Sendable] = [:], id: Int = 1, token: String) async throws -> Answer {
        try await gateway(.POST, "/mcp/" + connection, token: token, headers: MCPMessage.headers(method: "tools/call", name: tool), body: MCPMessage.toolCall(tool, arguments, id: id))
    }

    /// `GET /api/connections/status`, with the user's view when `token` is given.
    func status(token: String? = nil) async throws -> [String: Any] {
        let answer = try await gateway(.GET, "/api/connections/status", token: token)
        guard answer.status == 200 else { throw E2EError("status: \(answer)") }
        return answer.json
    }

    /// One connection's card in the status document.
    func card(_ name: String) async throws -> [String: Any] {
        let list = try await status()["connections"] as? [[String: Any]] ?? []
        guard let card = list.first(where: { $0["name"] as? String == name }) else { throw E2EError("no status card for \(name)") }
        return card
    }

    static func count(_ card: [String: Any], _ key: String) -> Int? {
        ((card["counts"] as? [String: Any])?[key] as? NSNumber)?.intValue
    }

    // MARK: the identity provider, as the user's browser

    /// Signs `username` in through the IdP's login page (authorization code + PKCE, client
    /// agent0) and redeems the code: a real ID token, and the browser's session cookie.
    func signIn(_ username: String) async throws -> SignedInUser {
        let verifier = RandomToken.make(bytes: 48)
        let challenge = Base64URL.encode(Self.bytes(hex: SHA256Hex.of(verifier)))
        let state = "st-" + RandomToken.make(bytes: 8)
        let parameters = [
            ("client_id", Self.webClientID), ("redirect_uri", Self.redirectURI), ("response_type", "code"), ("scope", "openid profile email"),
            ("state", state), ("nonce", "n-" + RandomToken.make(bytes: 8)), ("code_challenge", challenge), ("code_challenge_method", "S256"),
        ]
        let page = try await Self.send(.GET, issuer + "/oauth2/v1/authorize?" + Self.form(parameters))
        guard page.status == 200 else { throw E2EError("login page: \(page)") }
        let login = try await Self.postForm(
            issuer + "/oauth2/v1/authorize", Self.hiddenFields(page.body) + [("username", username), ("password", Self.passwords[username] ?? "")])
        guard login.status == 302, let location = login.header("Location"), location.hasPrefix(Self.redirectURI),
              let items = URLComponents(string: location)?.queryItems, let code = items.first(where: { $0.name == "code" })?.value,
              items.first(where: { $0.name == "state" })?.value == state,
              let cookie = login.headers["Set-Cookie"].first(where: { $0.hasPrefix("sb_idp_session=") })?.split(separator: ";").first.map(String.init)
        else { throw E2EError("sign-in: \(login)") }
        let basic = "Basic " + Data("\(Self.webClientID):\(Self.webClientSecret)".utf8).base64EncodedString()
        let tokens = try await Self.postForm(
            tokenEndpoint, [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", Self.redirectURI), ("code_verifier", verifier)],
            headers: [("Authorization", basic)])
        guard tokens.status == 200, let idToken = tokens.json["id_token"] as? String else { throw E2EError("code redemption: \(tokens)") }
        return SignedInUser(username: username, idToken: idToken, cookie: cookie)
    }

    /// The user opens `interactionURI` in their signed-in browser and approves.
    func approve(_ interactionURI: String, as user: SignedInUser) async throws {
        let page = try await Self.send(.GET, interactionURI, headers: [("Cookie", user.cookie)])
        guard page.status == 200, let csrf = Self.hiddenFields(page.body).first(where: { $0.0 == "csrf" })?.1 else {
            throw E2EError("consent page: \(page)")
        }
        let done = try await Self.postForm(interactionURI, [("csrf", csrf), ("decision", "approve")], headers: [("Cookie", user.cookie)])
        guard done.status == 200 else { throw E2EError("consent approval: \(done)") }
    }

    /// The agent revokes `user`'s consent for the STS app of `resource` at the IdP (RFC 7009
    /// with an STS token of that grant); throws unless the IdP then asks for consent again.
    func revokeConsent(of user: SignedInUser, resource: String) async throws {
        let stsForm = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"), ("requested_token_type", "urn:okta:params:oauth:token-type:oauth-sts"),
            ("subject_token", user.idToken), ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"), ("resource", resource),
        ]
        let sts = try await Self.postForm(tokenEndpoint, stsForm + (try agentAssertion(for: tokenEndpoint)))
        guard let stsToken = sts.json["access_token"] as? String else { throw E2EError("STS token for the revocation: \(sts)") }
        let revokeEndpoint = issuer + "/oauth2/v1/revoke"
        let revoked = try await Self.postForm(revokeEndpoint, [("token", stsToken), ("token_type_hint", "oauth_sts")] + (try agentAssertion(for: revokeEndpoint)))
        guard revoked.status == 200 else { throw E2EError("revocation: \(revoked)") }
        let again = try await Self.postForm(tokenEndpoint, stsForm + (try agentAssertion(for: tokenEndpoint)))
        guard again.json["error"] as? String == "interaction_required" else { throw E2EError("the IdP still brokers after revocation: \(again)") }
    }

    /// A client assertion (private_key_jwt) of the agent for `endpoint`.
    func agentAssertion(for endpoint: String) throws -> [(String, String)] {
        try ClientAssertion.formFields(clientID: Self.agentID, tokenEndpoint: endpoint, key: agentKey)
    }

    // MARK: parsing

    static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            out.append(UInt8(hex[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    static func unescapeHTML(_ s: String) -> String {
        s.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
    }

    /// The hidden inputs of an IdP page, in order.
    static func hiddenFields(_ html: String) -> [(String, String)] {
        html.matches(of: /<input type="hidden" name="([^"]*)" value="([^"]*)">/).map { (unescapeHTML(String($0.1)), unescapeHTML(String($0.2))) }
    }
}

/// MCP 2026-07-28 stateless messages (the `_meta` envelope and the `Mcp-Method`/`Mcp-Name` headers).
enum MCPMessage {
    static let version = "2026-07-28"

    static func toolCall(_ tool: String, _ arguments: [String: any Sendable], id: Int) -> String {
        let message: [String: Any] = [
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": [
                "name": tool, "arguments": arguments,
                "_meta": ["io.modelcontextprotocol/protocolVersion": version, "io.modelcontextprotocol/clientCapabilities": [String: Any]()],
            ] as [String: Any],
        ]
        return String(decoding: (try? JSONSerialization.data(withJSONObject: message, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
    }

    static func headers(method: String, name: String?) -> [(String, String)] {
        var h = [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream"), ("MCP-Protocol-Version", version),
                 ("Mcp-Method", method)]
        if let name { h.append(("Mcp-Name", name)) }
        return h
    }
}

/// A compact JWT's header and claims, decoded without verification (to look at them).
struct DecodedJWT {
    var header: [String: Any]
    var claims: [String: Any]

    init(_ token: String) throws {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let h = Base64URL.decode(parts[0]), let p = Base64URL.decode(parts[1]),
              let header = try JSONSerialization.jsonObject(with: h) as? [String: Any],
              let claims = try JSONSerialization.jsonObject(with: p) as? [String: Any]
        else { throw E2EError("not a compact JWT: \(token.prefix(40))") }
        self.header = header
        self.claims = claims
    }

    /// `scp` (array) or `scope` (space separated).
    var scopes: [String] {
        if let scp = claims["scp"] as? [String] { return scp }
        return (claims["scope"] as? String)?.split(separator: " ").map(String.init) ?? []
    }
}
