import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardTesting
import Testing

/// The gateway between a real client and real upstreams, over loopback HTTP.
@Suite("Proxy: MCP and REST through the gateway")
struct ProxyIntegrationTests {
    static func connections(_ upstream: TestUpstream, extra: String = "") -> String {
        """
          - name: todo-as
            kind: authorization_server
            issuer: http://127.0.0.1:1/oauth2/todo
          - name: mcp1
            kind: mcp_server
            title: MCP One
            upstream: \(upstream.baseURL)/mcp
            auth: { strategy: none }
          - name: api
            kind: application
            upstream: \(upstream.baseURL)/api
            auth: { strategy: none }
        \(extra.replacingOccurrences(of: "UPSTREAM", with: upstream.baseURL))
        """
    }

    static func withGateway(extra: String = "", gateway: String = "", environment: [String: String] = [:], _ body: (GatewayHarness, TestUpstream) async throws -> Void) async throws {
        let upstream = try await TestUpstream.start()
        try await withCleanup({
            let harness = try await GatewayHarness.start(connections: connections(upstream, extra: extra), gateway: gateway, environment: environment)
            try await withCleanup({ try await body(harness, upstream) }, cleanup: { await harness.stop() })
        }, cleanup: { await upstream.stop() })
    }

    let initialize = #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#

    @Test func mcpJSONRequestIsForwardedWithHeadersFiltered() async throws {
        try await Self.withGateway { gw, upstream in
            let token = gw.token()
            let r = try await gw.send(.POST, "/mcp/mcp1", headers: [
                ("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream"),
                ("Mcp-Session-Id", "s-1"), ("MCP-Protocol-Version", "2025-06-18"), ("Last-Event-ID", "7"),
                ("Cookie", "session=secret-cookie"), ("X-Custom", "kept"), ("Connection", "keep-alive, X-Hop"), ("X-Hop", "dropped"),
                ("X-Forwarded-For", "6.6.6.6"),
            ], body: initialize, token: token)
            #expect(r.status == 200)
            #expect(jsonObject(r.body)["id"] as? Int == 1)
            #expect(r.headers.first(name: "mcp-session-id") == "session-abc")
            #expect(r.headers.first(name: "set-cookie") == nil)
            let seen = try #require(upstream.lastSeen)
            #expect(seen.path == "/mcp")
            #expect(seen.body == initialize)
            #expect(seen.headers["authorization"] == nil, "the user's ID token must never reach the upstream")
            #expect(seen.headers["cookie"] == nil)
            #expect(seen.headers["x-hop"] == nil)
            #expect(seen.headers["x-forwarded-for"] == nil)
            #expect(seen.headers["mcp-session-id"] == "s-1")
            #expect(seen.headers["mcp-protocol-version"] == "2025-06-18")
            #expect(seen.headers["last-event-id"] == "7")
            #expect(seen.headers["accept"] == "application/json, text/event-stream")
            #expect(seen.headers["content-type"] == "application/json")
            #expect(seen.headers["x-custom"] == "kept")
            #expect(!seen.headers.values.contains { $0.contains(token) })
        }
    }

    @Test func sseEventsReachTheClientBeforeTheUpstreamFinishes() async throws {
        try await Self.withGateway { gw, upstream in
            var request = HTTPClientRequest(url: gw.baseURL + "/mcp/mcp1")
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer " + gw.token())
            request.headers.add(name: "Accept", value: "application/json, text/event-stream")
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: #"{"jsonrpc":"2.0","id":5,"method":"stream"}"#))
            let started = ContinuousClock.now
            // (A generous deadline: the check is the order of events, and a full parallel test
            // run on 2 cores once took longer than 10 s here.)
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(45))
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "content-type") == "text/event-stream")
            var received = ""
            var firstEventWhileUpstreamOpen: Bool?
            var firstEventAfter: Duration?  // informative only: the gate above is the real check
            for try await chunk in response.body {
                received += String(buffer: chunk)
                if firstEventWhileUpstreamOpen == nil, received.contains("\"n\":1") {
                    firstEventWhileUpstreamOpen = !upstream.streamFinished.withLock { $0 }
                    firstEventAfter = ContinuousClock.now - started
                    upstream.gate.withLock { $0 = true }
                }
            }
            #expect(firstEventWhileUpstreamOpen == true, "the first SSE event must arrive while the upstream stream is still open")
            _ = firstEventAfter
            #expect(received.contains("\"done\":true"))
            #expect(received.contains("id: 2"))
        }
    }

    /// Regression: an upstream that answers before reading the body made the HTTP client ask
    /// for the inbound body a second time on a fresh connection, and the server trapped.
    @Test func upstreamsThatAnswerBeforeReadingTheBodyDoNotCrashTheGateway() async throws {
        try await Self.withGateway(extra: """
              - name: early
                kind: mcp_server
                upstream: UPSTREAM/early
                auth: { strategy: none }
            """) { gw, _ in
            let token = gw.token()
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<200 {
                    // A generous client deadline: 200 calls at once on a loaded CI machine.
                    group.addTask {
                        try await gw.send(.POST, "/mcp/early", headers: [("Content-Type", "application/json")], body: #"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
                                          token: token, timeout: .seconds(90)).status
                    }
                }
                for try await status in group { #expect(status == 200) }
            }
            #expect(try await gw.send(.GET, "/healthz").status == 200, "the gateway is still up")
        }
    }

    @Test func getStreamAndDeleteArePassedThrough() async throws {
        try await Self.withGateway { gw, upstream in
            upstream.gate.withLock { $0 = true }
            let get = try await gw.send(.GET, "/mcp/mcp1", headers: [("Accept", "text/event-stream"), ("Last-Event-ID", "1")], token: gw.token())
            #expect(get.status == 200)
            #expect(get.body.contains("id: 2"))
            #expect(upstream.lastSeen?.headers["last-event-id"] == "1")
            let del = try await gw.send(.DELETE, "/mcp/mcp1", headers: [("Mcp-Session-Id", "s-9")], token: gw.token())
            #expect(del.status == 200)
            #expect(upstream.lastSeen?.method == "DELETE")
            #expect(upstream.lastSeen?.headers["mcp-session-id"] == "s-9")
            let put = try await gw.send(.PUT, "/mcp/mcp1", body: "{}", token: gw.token())
            #expect(put.status == 405)
            #expect(jsonObject(put.body)["error"] as? String == "method_not_allowed")
        }
    }

    @Test func restPathQueryAndMethodsPassThrough() async throws {
        try await Self.withGateway { gw, upstream in
            let r = try await gw.send(.GET, "/rest/api/repos/acme/app/pulls?state=open&page=2", token: gw.token())
            #expect(r.status == 200)
            let echo = jsonObject(r.body)
            #expect(echo["path"] as? String == "/api/repos/acme/app/pulls")
            #expect(echo["query"] as? String == "state=open&page=2")
            let post = try await gw.send(.PATCH, "/rest/api/items/7", headers: [("Content-Type", "application/json")], body: #"{"done":true}"#, token: gw.token())
            #expect(jsonObject(post.body)["method"] as? String == "PATCH")
            #expect(upstream.lastSeen?.body == #"{"done":true}"#)
            let big = try await gw.send(.GET, "/rest/api/big", token: gw.token())
            #expect(big.body.utf8.count == 16_384)
            #expect(big.headers.first(name: "content-length") == "16384")
            let chunked = try await gw.send(.POST, "/rest/api/upload", body: String(repeating: "y", count: 5000), token: gw.token(), chunked: true)
            #expect(jsonObject(chunked.body)["body_bytes"] as? Int == 5000)
        }
    }

    @Test func pathEscapesAreRejectedBeforeReachingTheUpstream() async throws {
        try await Self.withGateway { gw, upstream in
            for path in ["/rest/api/../mcp", "/rest/api/%2e%2e/mcp", "/rest/api/a%2fb", "/rest/api//evil", "/rest/api/%2E%2E/x"] {
                let before = upstream.seen.withLock { $0.count }
                let r = try await gw.send(.GET, path, token: gw.token())
                #expect(r.status == 400, "\(path)")
                #expect(jsonObject(r.body)["error"] as? String == "invalid_path")
                #expect(upstream.seen.withLock { $0.count } == before)
            }
        }
    }

    @Test func inboundTokensAreValidated() async throws {
        try await Self.withGateway { gw, upstream in
            let cases: [(String?, String)] = [
                (nil, "no token"),
                ("not-a-jwt", "garbage"),
                (gw.issuer.idToken(audience: "other-client"), "wrong audience"),
                (gw.issuer.idToken(lifetime: 60, issuedAt: Date().addingTimeInterval(-3600)), "expired"),
                (gw.issuer.idToken(key: .foreignRSA), "forged signature"),
                (gw.issuer.idToken(key: .hs256("x")), "HS256"),
                (gw.issuer.idToken(key: .none), "alg none"),
                (gw.issuer.idToken(header: ["typ": "at+jwt"]), "access token as ID token"),
            ]
            for (token, label) in cases {
                let r = try await gw.send(.POST, "/mcp/mcp1", body: initialize, token: token)
                #expect(r.status == 401, "\(label)")
                #expect(jsonObject(r.body)["error"] as? String == "invalid_user_token", "\(label)")
                #expect(r.headers.first(name: "www-authenticate")?.hasPrefix("Bearer") == true, "\(label)")
                if let token { #expect(!r.body.contains(token)) }
            }
            let basic = try await gw.send(.GET, "/rest/api/x", headers: [("Authorization", "Basic dXNlcjpwYXNz")])
            #expect(basic.status == 401)
            #expect(upstream.seen.withLock { $0.isEmpty }, "no rejected request may reach the upstream")
        }
    }

    @Test func gatewayErrorsAreJSONWithStableCodes() async throws {
        try await Self.withGateway(extra: """
              - name: down
                kind: mcp_server
                upstream: http://127.0.0.1:1/mcp
                auth: { strategy: none }
              - name: slow
                kind: mcp_server
                upstream: UPSTREAM/mcp
                timeouts: { response: 300ms }
                auth: { strategy: none }
              - name: tiny
                kind: application
                upstream: UPSTREAM/api
                max_request_body: 1KiB
                auth: { strategy: none }
              - name: off
                kind: mcp_server
                enabled: false
                upstream: http://127.0.0.1:1/mcp
                auth: { strategy: none }
            """) { gw, upstream in
            let token = gw.token()

            let down = try await gw.send(.POST, "/mcp/down", body: initialize, token: token)
            #expect(down.status == 502)
            #expect(jsonObject(down.body)["error"] as? String == "upstream_unreachable")
            #expect(jsonObject(down.body)["connection"] as? String == "down")

            let slow = try await gw.send(.POST, "/mcp/slow", body: #"{"jsonrpc":"2.0","id":1,"method":"slow"}"#, token: token)
            #expect(slow.status == 504)
            #expect(jsonObject(slow.body)["error"] as? String == "upstream_timeout")

            let big = String(repeating: "z", count: 2048)
            let tooLarge = try await gw.send(.POST, "/rest/tiny/upload", body: big, token: token)
            #expect(tooLarge.status == 413)
            #expect(jsonObject(tooLarge.body)["error"] as? String == "payload_too_large")
            let tooLargeChunked = try await gw.send(.POST, "/rest/tiny/upload", body: big, token: token, chunked: true)
            #expect(tooLargeChunked.status == 413)
            #expect(jsonObject(tooLargeChunked.body)["error"] as? String == "payload_too_large")

            let off = try await gw.send(.POST, "/mcp/off", body: initialize, token: token)
            #expect(off.status == 403)
            #expect(jsonObject(off.body)["error"] as? String == "connection_disabled")

            let unknown = try await gw.send(.POST, "/mcp/nope", body: initialize, token: token)
            #expect(unknown.status == 404)
            #expect(jsonObject(unknown.body)["error"] as? String == "unknown_connection")

            let notFound = try await gw.send(.GET, "/nothing-here")
            #expect(notFound.status == 404)
            #expect(jsonObject(notFound.body)["error"] as? String == "not_found")

            let manyHeaders = (0..<120).map { ("X-H\($0)", "v") }
            let tooMany = try await gw.send(.GET, "/rest/api/x", headers: manyHeaders, token: token)
            #expect(tooMany.status == 431)
            #expect(jsonObject(tooMany.body)["error"] as? String == "headers_too_large")

            for r in [down, slow, tooLarge, off, unknown, notFound, tooMany] {
                #expect(r.headers.first(name: "content-type") == "application/json")
                #expect(!r.body.contains(token))
            }
        }
    }

    @Test func statusReflectsTrafficAndNeverLeaksTokens() async throws {
        try await Self.withGateway(extra: """
              - name: broken
                kind: application
                upstream: http://127.0.0.1:1/api
                auth: { strategy: none }
            """, environment: ["DISABLED_CONNECTIONS": "authorization_server"]) { gw, _ in
            var mcp = try #require(try await gw.connectionStatus("mcp1"))
            #expect(mcp["status"] as? String == "IDLE")
            let token = gw.token()
            _ = try await gw.send(.POST, "/mcp/mcp1", body: initialize, token: token)
            _ = try await gw.send(.GET, "/rest/broken/x", token: token)
            mcp = try #require(try await gw.connectionStatus("mcp1"))
            #expect(mcp["status"] as? String == "LIVE")
            #expect(mcp["last_success_at"] is String)
            #expect(mcp["strategy"] as? String == "none")
            let details = try #require(mcp["details"] as? [String: Any])
            #expect(details["route"] as? String == "/mcp/mcp1")
            #expect(details["resource_indicator"] as? String != nil)
            let broken = try #require(try await gw.connectionStatus("broken"))
            #expect(broken["status"] as? String == "ERROR")
            #expect((broken["last_error"] as? [String: Any])?["code"] as? String == "upstream_unreachable")
            let asCard = try #require(try await gw.connectionStatus("todo-as"))
            #expect(asCard["status"] as? String == "DISABLED")
            let raw = try await gw.send(.GET, "/api/connections/status")
            #expect(!raw.body.contains(token))
            #expect(!raw.body.contains(String(token.split(separator: ".")[2])))

            let listing = jsonObject(try await gw.send(.GET, "/api/connections?kind=mcp_server").body)
            let names = (listing["connections"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            #expect(names == ["mcp1"])
            #expect(try await gw.send(.GET, "/api/connections?kind=bogus").status == 400)
            #expect(try await gw.send(.GET, "/healthz").status == 200)
            #expect(try await gw.send(.GET, "/readyz").status == 200)
        }
    }
}
