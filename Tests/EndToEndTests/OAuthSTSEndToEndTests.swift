import Foundation
import Testing

/// The GitHub stand-in behind the gateway with the `oauth-sts` strategy (brokered consent).
@Suite("End to end: OAuth STS with brokered consent")
struct OAuthSTSEndToEndTests {
    static let commentsPath = "/rest/github/repos/acme/app/issues/1/comments"
    static let json = [("Content-Type", "application/json"), ("Accept", "application/json")]

    @Test("GitHub REST comment: interaction_required, consent at the IdP, then 201 with one exchange; the status turns LIVE")
    func restCommentAfterConsent() async throws {
        try await withEndToEnd { env in
            let alice = try await env.signIn("alice")

            let first = try await env.gateway(.POST, Self.commentsPath, token: alice.idToken, headers: Self.json, body: #"{"body":"LGTM"}"#)
            #expect(first.status == 401, "\(first)")
            #expect(first.json["error"] as? String == "interaction_required", "\(first)")
            #expect(first.json["connection"] as? String == "github", "\(first)")
            let uri = try #require(first.json["interaction_uri"] as? String, "no interaction_uri: \(first)")
            #expect(uri.hasPrefix(env.issuer + "/oauth2/v1/interaction/"), "interaction_uri not on the IdP: \(uri)")
            let challenge = first.header("WWW-Authenticate") ?? ""
            #expect(challenge.hasPrefix("Bearer ") && challenge.contains(#"error="interaction_required""#), "WWW-Authenticate: \(challenge)")

            let pending = try await env.card("github")
            #expect(pending["status"] as? String == "IDLE", "\(pending)")
            #expect(pending["reason"] as? String == "consent_required", "\(pending)")
            let pendingView = try await Self.userView(env, alice, "github")
            #expect(pendingView?["state"] as? String == "consent_required", "\(pendingView ?? [:])")
            #expect(pendingView?["interaction_uri"] as? String == uri)

            try await env.approve(uri, as: alice)
            let exchangesBefore = env.front.stsExchanges

            let second = try await env.gateway(.POST, Self.commentsPath, token: alice.idToken, headers: Self.json, body: #"{"body":"LGTM"}"#)
            #expect(second.status == 201, "\(second)")
            #expect((second.json["html_url"] as? String)?.isEmpty == false, "no html_url: \(second)")
            #expect(second.json["body"] as? String == "LGTM")
            #expect(env.front.stsExchanges == exchangesBefore + 1, "STS exchanges after consent: \(env.front.stsExchanges - exchangesBefore)")

            let third = try await env.gateway(.POST, Self.commentsPath, token: alice.idToken, headers: Self.json, body: #"{"body":"Ship it"}"#)
            #expect(third.status == 201, "\(third)")
            #expect(env.front.stsExchanges == exchangesBefore + 1, "the second comment made a new exchange")

            let list = try await env.gateway(.GET, Self.commentsPath, token: alice.idToken, headers: [("Accept", "application/json")])
            #expect(list.status == 200, "\(list)")
            let comments = (try? JSONSerialization.jsonObject(with: Data(list.body.utf8))) as? [[String: Any]] ?? []
            #expect(comments.compactMap { $0["body"] as? String } == ["LGTM", "Ship it"], "\(list)")

            let live = try await env.card("github")
            #expect(live["status"] as? String == "LIVE", "\(live)")
            let liveView = try await Self.userView(env, alice, "github")
            #expect(liveView?["state"] as? String == "live", "\(liveView ?? [:])")
        }
    }

    @Test("github-mcp tools/call before consent is a JSON-RPC error with the interaction URI; after consent it succeeds")
    func mcpCommentAfterConsent() async throws {
        try await withEndToEnd { env in
            let alice = try await env.signIn("alice")
            let arguments: [String: any Sendable] = ["owner": "acme", "repo": "app", "pull_number": 7, "body": "LGTM"]

            let first = try await env.callTool("github-mcp", "add_pull_request_comment", arguments, id: 42, token: alice.idToken)
            #expect(first.status == 401, "\(first)")
            let body = first.json
            #expect(body["jsonrpc"] as? String == "2.0", "\(first)")
            #expect((body["id"] as? NSNumber)?.intValue == 42, "the JSON-RPC id is not the request's: \(first)")
            let error = try #require(body["error"] as? [String: Any], "no JSON-RPC error object: \(first)")
            #expect(error["code"] is NSNumber, "\(first)")
            #expect((error["message"] as? String)?.isEmpty == false, "\(first)")
            let data = try #require(error["data"] as? [String: Any], "no error.data: \(first)")
            let uri = try #require(data["interaction_uri"] as? String, "no error.data.interaction_uri: \(first)")
            #expect(uri.hasPrefix(env.issuer + "/oauth2/v1/interaction/"))
            #expect(data["error"] as? String == "interaction_required")
            #expect(body["interaction_uri"] as? String == uri, "no top-level interaction_uri: \(first)")
            #expect(body["connection"] as? String == "github-mcp", "no top-level connection: \(first)")

            try await env.approve(uri, as: alice)
            let second = try await env.callTool("github-mcp", "add_pull_request_comment", arguments, id: 43, token: alice.idToken)
            #expect(second.status == 200, "\(second)")
            #expect((second.json["id"] as? NSNumber)?.intValue == 43)
            let result = try #require(second.result, "no tool result: \(second)")
            #expect(result["isError"] as? Bool == false, "\(second)")
            #expect(((result["structuredContent"] as? [String: Any])?["html_url"] as? String)?.isEmpty == false, "\(second)")
            #expect(try await env.card("github-mcp")["status"] as? String == "LIVE")
        }
    }

    @Test("a revoked consent: once the gateway's cached STS token runs out, the user is asked to consent again")
    func revokedConsent() async throws {
        // GitHub tokens live 34 s here; the gateway refreshes 30 s before expiry, so it keeps one ~4 s.
        try await withEndToEnd(.init(githubTokenLifetime: 34)) { env in
            let alice = try await env.signIn("alice")
            let first = try await env.gateway(.POST, Self.commentsPath, token: alice.idToken, headers: Self.json, body: #"{"body":"one"}"#)
            let uri = try #require(first.json["interaction_uri"] as? String, "\(first)")
            try await env.approve(uri, as: alice)
            let commented = try await env.gateway(.POST, Self.commentsPath, token: alice.idToken, headers: Self.json, body: #"{"body":"one"}"#)
            #expect(commented.status == 201, "\(commented)")
            let obtained = ContinuousClock.now  // the gateway got its token before this answer

            try await env.revokeConsent(of: alice, resource: "orn:dev:idp:github")

            // Once the cached token is due for refresh, the gateway asks the IdP again.
            try await Task.sleep(until: obtained + .milliseconds(4500))
            let after = try await env.gateway(.POST, Self.commentsPath, token: alice.idToken, headers: Self.json, body: #"{"body":"two"}"#)
            #expect(after.status == 401, "\(after)")
            #expect(after.json["error"] as? String == "interaction_required", "\(after)")
            let newURI = try #require(after.json["interaction_uri"] as? String, "\(after)")
            #expect(newURI != uri)
            let card = try await env.card("github")
            #expect(card["status"] as? String == "IDLE" && card["reason"] as? String == "consent_required", "\(card)")

            // Consenting again restores access.
            try await env.approve(newURI, as: alice)
            let restored = try await env.gateway(.POST, Self.commentsPath, token: alice.idToken, headers: Self.json, body: #"{"body":"two"}"#)
            #expect(restored.status == 201, "\(restored)")
        }
    }

    /// The user's view of `connection` in `GET /api/connections/status` sent with their ID token.
    static func userView(_ env: EndToEnd, _ user: SignedInUser, _ connection: String) async throws -> [String: Any]? {
        let doc = try await env.status(token: user.idToken)
        let view = doc["user"] as? [String: Any]
        let list = view?["connections"] as? [[String: Any]] ?? []
        return list.first { $0["name"] as? String == connection }
    }
}
