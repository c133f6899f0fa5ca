import Foundation
import NIOHTTP1
import OAuthCore
import SwitchboardTesting

/// One HTTP answer (``HTTPAnswer``), with the MCP view of its body.
typealias Answer = HTTPAnswer

extension HTTPAnswer {
    /// The JSON-RPC `result` of an MCP answer.
    var result: [String: Any]? { json["result"] as? [String: Any] }
}

/// A signed-in user: the ID token the agent sends to the gateway, and the IdP session cookie
/// of their browser (for consent pages).
typealias SignedInUser = IdPBrowser.SignedIn

extension EndToEnd {
    // MARK: the gateway

    /// A request to the gateway with the user's ID token.
    func gateway(_ method: HTTPMethod, _ path: String, token: String?, headers: [(String, String)] = [], body: String? = nil) async throws -> Answer {
        var all = headers
        if let token { all.append(("Authorization", "Bearer " + token)) }
        return try await TestHTTP.send(method, gatewayURL + path, headers: all, body: body)
    }

    /// An MCP 2026-07-28 stateless `tools/call` through `/mcp/{connection}`.
    func callTool(_ connection: String, _ tool: String, _ arguments: [String: any Sendable] = [:], id: Int = 1, token: String) async throws -> Answer {
        try await Self.callTool(at: gatewayURL, connection, tool, arguments, id: id, token: token)
    }

    /// The same `tools/call` through the gateway at `gatewayURL` (another one than this environment's).
    static func callTool(
        at gatewayURL: String, _ connection: String, _ tool: String, _ arguments: [String: any Sendable] = [:], id: Int = 1, token: String
    ) async throws -> Answer {
        try await TestHTTP.send(
            .POST, gatewayURL + "/mcp/" + connection, headers: MCPMessage.headers(method: "tools/call", name: tool) + [("Authorization", "Bearer " + token)],
            body: MCPMessage.toolCall(tool, arguments, id: id))
    }

    /// `GET /api/connections/status`, with the user's view when `token` is given.
    func status(token: String? = nil) async throws -> [String: Any] {
        let answer = try await gateway(.GET, "/api/connections/status", token: token)
        guard answer.status == 200 else { throw StepFailed("status: \(answer)") }
        return answer.json
    }

    /// One connection's card in the status document.
    func card(_ name: String) async throws -> [String: Any] {
        let list = try await status()["connections"] as? [[String: Any]] ?? []
        guard let card = list.first(where: { $0["name"] as? String == name }) else { throw StepFailed("no status card for \(name)") }
        return card
    }

    static func count(_ card: [String: Any], _ key: String) -> Int? {
        ((card["counts"] as? [String: Any])?[key] as? NSNumber)?.intValue
    }

    // MARK: the identity provider, as the user's browser

    /// The user's browser at the IdP (the agent0 web client).
    var browser: IdPBrowser { IdPBrowser(issuer: issuer) }

    /// Signs `username` in through the IdP's login page (authorization code + PKCE, client
    /// agent0) and redeems the code: a real ID token, and the browser's session cookie.
    func signIn(_ username: String) async throws -> SignedInUser {
        try await browser.signIn(username, password: Self.passwords[username] ?? "")
    }

    /// The user opens `interactionURI` in their signed-in browser and approves.
    func approve(_ interactionURI: String, as user: SignedInUser) async throws {
        try await browser.approve(interactionURI, as: user)
    }

    /// The agent revokes `user`'s consent for the STS app of `resource` at the IdP (RFC 7009
    /// with an STS token of that grant); throws unless the IdP then asks for consent again.
    func revokeConsent(of user: SignedInUser, resource: String) async throws {
        let stsForm = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"), ("requested_token_type", "urn:okta:params:oauth:token-type:oauth-sts"),
            ("subject_token", user.idToken), ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"), ("resource", resource),
        ]
        let sts = try await TestHTTP.postForm(tokenEndpoint, stsForm + (try agentAssertion(for: tokenEndpoint)))
        guard let stsToken = sts.json["access_token"] as? String else { throw StepFailed("STS token for the revocation: \(sts)") }
        let revokeEndpoint = issuer + "/oauth2/v1/revoke"
        let revoked = try await TestHTTP.postForm(revokeEndpoint, [("token", stsToken), ("token_type_hint", "oauth_sts")] + (try agentAssertion(for: revokeEndpoint)))
        guard revoked.status == 200 else { throw StepFailed("revocation: \(revoked)") }
        let again = try await TestHTTP.postForm(tokenEndpoint, stsForm + (try agentAssertion(for: tokenEndpoint)))
        guard again.json["error"] as? String == "interaction_required" else { throw StepFailed("the IdP still brokers after revocation: \(again)") }
    }

    /// A client assertion (private_key_jwt) of the agent for `endpoint`.
    func agentAssertion(for endpoint: String) throws -> [(String, String)] {
        try ClientAssertion.formFields(clientID: Self.agentID, tokenEndpoint: endpoint, key: agentKey)
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
