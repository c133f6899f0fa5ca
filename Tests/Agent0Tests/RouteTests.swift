import Foundation
import OAuthCore
import SwitchboardJSON
import SwitchboardTesting
import Testing

/// Every route's JSON and error answers, against agent0 with the development IdP, the gateway
/// and the scripted model all on loopback ports.
@Suite("agent0 routes: JSON answers and errors")
struct RouteTests {
    /// Every `/api/…` route, with the method the page uses and a well-formed body.
    static let apiRoutes: [(method: String, path: String, body: String?)] = [
        ("GET", "/api/history", nil), ("GET", "/api/connections", nil),
        ("POST", "/api/chat", #"{"message":"hello"}"#), ("POST", "/api/chat/resume", #"{"consent_id":"c-1"}"#),
    ]

    static func send(_ stack: Agent0Stack, _ browser: Browser, _ route: (method: String, path: String, body: String?), headers: [(String, String)] = []) async throws -> Answer {
        try await browser.send(route.method == "GET" ? .GET : .POST, stack.url(route.path), headers: headers + [("Content-Type", "application/json")], body: route.body)
    }

    /// `{"error": code, "message": <a sentence>}` with `status`, JSON and `no-store`.
    static func expectError(_ answer: Answer, _ status: Int, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(answer.status == status, "\(answer)", sourceLocation: sourceLocation)
        #expect(answer.header("Content-Type") == "application/json", sourceLocation: sourceLocation)
        #expect(answer.header("Cache-Control") == "no-store", sourceLocation: sourceLocation)
        #expect(answer.jsonValue?["error"]?.string == code, "\(answer)", sourceLocation: sourceLocation)
        #expect((answer.jsonValue?["message"]?.string ?? "").count > 3, "an error carries a sentence: \(answer)", sourceLocation: sourceLocation)
        #expect(answer.jsonValue?.object?.keys.sorted() == ["error", "message"], "\(answer)", sourceLocation: sourceLocation)
    }

    @Test("GET /health answers {\"status\":\"ok\"}")
    func health() async throws {
        try await withAgent0Stack { stack in
            let answer = try await stack.browser().get(stack.url("/health"))
            #expect(answer.status == 200)
            #expect(answer.header("Content-Type") == "application/json")
            #expect(answer.jsonValue == ["status": "ok"])
        }
    }

    @Test("/auth/status: {authenticated:false} signed out; name, email, subject, expires_at and csrf_token of the ID token signed in")
    func authStatus() async throws {
        try await withAgent0Stack { stack in
            let browser = stack.browser()
            let out = try await browser.get(stack.url("/auth/status"))
            #expect(out.status == 200)
            #expect(out.header("Cache-Control") == "no-store")
            #expect(out.jsonValue == ["authenticated": false])

            let before = Date()
            let alice = try await stack.signIn(browser, as: "alice")
            let user = try #require(Agent0Stack.user("alice"))
            let status = alice.status
            #expect(status["authenticated"]?.bool == true)
            #expect(status["name"]?.string == user.name)
            #expect(status["email"]?.string == user.email)
            #expect(status["subject"]?.string == user.id)
            let csrf = try #require(status["csrf_token"]?.string)
            #expect(csrf.count >= 32, "a CSRF token of at least 192 bits")
            #expect(csrf != alice.session, "the CSRF token is not the session id")
            // expires_at is the ID token's exp (ISO 8601): in the future, within the ID token's life.
            let expires = try #require(status["expires_at"]?.string.flatMap { ISO8601DateFormatter().date(from: $0) })
            #expect(expires > before.addingTimeInterval(60))
            #expect(expires < before.addingTimeInterval(86_400))
            #expect(status["reason"] == nil)

            // The session cookie is all the browser holds: no token in the status document.
            #expect(!status.encodedString.contains("eyJ"), "no JWT reaches the browser")
        }
    }

    @Test("every /api/… route answers 401 not_signed_in without a cookie and with an unknown session id", arguments: apiRoutes.indices)
    func notSignedIn(_ index: Int) async throws {
        let route = Self.apiRoutes[index]
        try await withAgent0Stack { stack in
            let browser = stack.browser()
            Self.expectError(try await Self.send(stack, browser, route), 401, "not_signed_in")
            browser.setCookie(Agent0Stack.sessionCookie, RandomToken.make())
            Self.expectError(try await Self.send(stack, browser, route), 401, "not_signed_in")
            #expect(stack.llm.requests.isEmpty, "nothing reached the model")
        }
    }

    @Test("a session whose ID token expired: every /api/… route answers 401 session_expired, /auth/status says so")
    func sessionExpired() async throws {
        let lifetime: TimeInterval = 4
        try await withAgent0Stack(.init(identity: .standIn(.honest(lifetime: lifetime)))) { stack in
            let browser = stack.browser()
            let user = try await stack.signIn(browser)
            #expect(user.status["name"]?.string == StandInOIDCProvider.userName)
            // The cookie ends with the ID token.
            let cookie = try #require(user.callback.setCookie(Agent0Stack.sessionCookie))
            #expect((cookie.maxAge ?? .max) <= Int(lifetime))
            let history = try await browser.get(stack.url("/api/history"))
            #expect(history.status == 200, "valid before the ID token's exp: \(history)")

            try await Task.sleep(for: .seconds(lifetime + 1.5))
            // Every route, and again: the answer stays session_expired (not not_signed_in).
            for route in Self.apiRoutes + Self.apiRoutes {
                Self.expectError(try await Self.send(stack, browser, route), 401, "session_expired")
            }
            let status = try await browser.get(stack.url("/auth/status"))
            #expect(status.jsonValue == ["authenticated": false, "reason": "session_expired"])
            // Still so after another sign-in swept the expired sessions away.
            _ = try await stack.signIn(stack.browser())
            Self.expectError(try await browser.get(stack.url("/api/history")), 401, "session_expired")
            #expect(stack.llm.requests.isEmpty)
        }
    }

    @Test("a POST without X-CSRF-Token, with a wrong one, or from another Origin: 403 csrf_failed (and the turn does not run)")
    func csrf() async throws {
        try await withAgent0Stack { stack in
            let browser = stack.browser()
            let alice = try await stack.signIn(browser)
            let own = TestHTTP.origin(stack.publicURL)
            for (path, body) in [("/api/chat", #"{"message":"hello"}"#), ("/api/chat/resume", #"{"consent_id":"c-1"}"#)] {
                Self.expectError(try await stack.post(browser, path, json: body, csrf: nil), 403, "csrf_failed")
                Self.expectError(try await stack.post(browser, path, json: body, csrf: RandomToken.make()), 403, "csrf_failed")
                Self.expectError(try await stack.post(browser, path, json: body, csrf: ""), 403, "csrf_failed")
                Self.expectError(try await stack.post(browser, path, json: body, csrf: alice.csrf, origin: "http://evil.example"), 403, "csrf_failed")
                // A different port of the same host is another origin.
                let port = Int(stack.baseURL.split(separator: ":").last!)!
                Self.expectError(try await stack.post(browser, path, json: body, csrf: alice.csrf, origin: "http://127.0.0.1:\(port + 1)"), 403, "csrf_failed")
            }
            // Another session's token is not this one's.
            let bob = try await stack.signIn(stack.browser(), as: "bob")
            Self.expectError(try await stack.post(browser, "/api/chat", json: #"{"message":"hello"}"#, csrf: bob.csrf), 403, "csrf_failed")
            #expect(stack.llm.requests.isEmpty, "no refused POST reached the model")

            // POST /logout is held to the same rule, and the session survives the refusal.
            Self.expectError(try await stack.post(browser, "/logout", json: "{}", csrf: nil), 403, "csrf_failed")
            Self.expectError(try await stack.post(browser, "/logout", json: "{}", csrf: alice.csrf, origin: "http://evil.example"), 403, "csrf_failed")
            #expect(try await browser.get(stack.url("/api/history")).status == 200)

            // The right token, with or without the page's own Origin, passes.
            let ok = try await stack.post(browser, "/api/chat", json: #"{"message":"hello"}"#, csrf: alice.csrf, origin: own)
            #expect(ok.status == 200, "\(ok)")
            let noOrigin = try await stack.post(browser, "/api/chat", json: #"{"message":"again"}"#, csrf: alice.csrf)
            #expect(noOrigin.status == 200, "\(noOrigin)")
            #expect(stack.llm.requests.count == 2)
        }
    }

    @Test("a body that is not a JSON object, or lacks its field: 400 invalid_request with {error, message}")
    func badBodies() async throws {
        try await withAgent0Stack { stack in
            let browser = stack.browser()
            let alice = try await stack.signIn(browser)
            let bodies: [(String, String)] = [
                ("/api/chat", "{not json"), ("/api/chat", "[1,2]"), ("/api/chat", "\"hello\""), ("/api/chat", ""),
                ("/api/chat", #"{"text":"hello"}"#), ("/api/chat", #"{"message":"   "}"#), ("/api/chat", #"{"message":42}"#),
                ("/api/chat/resume", "{not json"), ("/api/chat/resume", #"{"consent":"c-1"}"#), ("/api/chat/resume", #"{"consent_id":""}"#),
            ]
            for (path, body) in bodies {
                let answer = try await stack.post(browser, path, json: body, csrf: alice.csrf)
                Self.expectError(answer, 400, "invalid_request")
            }
            // Longer than a message may be.
            let long = String(repeating: "a", count: 16_001)
            Self.expectError(try await stack.post(browser, "/api/chat", json: #"{"message":"\#(long)"}"#, csrf: alice.csrf), 400, "invalid_request")
            #expect(stack.llm.requests.isEmpty)
            // None of them left anything in the history.
            #expect(try await browser.get(stack.url("/api/history")).jsonValue == ["entries": []])
        }
    }

    @Test("POST /api/chat/resume with no call waiting: 409 nothing_waiting")
    func resumeWithNothingWaiting() async throws {
        try await withAgent0Stack { stack in
            let browser = stack.browser()
            let alice = try await stack.signIn(browser)
            Self.expectError(try await stack.post(browser, "/api/chat/resume", json: #"{"consent_id":"c-1"}"#, csrf: alice.csrf), 409, "nothing_waiting")
            // Also after a finished turn (it asked for no consent).
            #expect(try await stack.chat(browser, alice, "hello").status == 200)
            Self.expectError(try await stack.post(browser, "/api/chat/resume", json: #"{"consent_id":"c-1"}"#, csrf: alice.csrf), 409, "nothing_waiting")
            #expect(stack.llm.requests.count == 1, "a resume with nothing waiting calls no model")
        }
    }

    @Test("GET /api/connections: the gateway's status document with this user's view")
    func connections() async throws {
        try await withAgent0Stack(.init(mcp: [.init(name: "alpha", tools: ["ping"])])) { stack in
            let browser = stack.browser()
            let alice = try await stack.signIn(browser)
            let answer = try await browser.get(stack.url("/api/connections"))
            #expect(answer.status == 200, "\(answer)")
            #expect(answer.header("Cache-Control") == "no-store")
            let doc = try #require(answer.jsonValue)
            #expect(doc["connections"]?.array?.compactMap { $0["name"]?.string } == ["alpha"])
            #expect(doc["user"]?["subject"]?.string == alice.status["subject"]?.string, "the gateway saw this user's ID token: \(answer)")
            #expect(doc["user"]?["connections"]?.array != nil)
            #expect(!answer.body.contains("eyJ"), "no token in the panel's data")
        }
    }

    @Test("POST /logout: {redirect} to the IdP's end-session endpoint with id_token_hint and post_logout_redirect_uri; the session is gone")
    func logout() async throws {
        try await withAgent0Stack { stack in
            let browser = stack.browser()
            let alice = try await stack.signIn(browser)
            let answer = try await stack.post(browser, "/logout", json: "{}", csrf: alice.csrf, origin: TestHTTP.origin(stack.publicURL))
            #expect(answer.status == 200, "\(answer)")
            #expect(answer.header("Cache-Control") == "no-store")
            let redirect = try #require(answer.jsonValue?["redirect"]?.string)
            #expect(answer.jsonValue?.object?.keys.sorted() == ["redirect"])

            // The end-session endpoint is the one the IdP's discovery names.
            let discovery = try await browser.get(stack.issuer + "/.well-known/openid-configuration")
            let endSession = try #require(discovery.jsonValue?["end_session_endpoint"]?.string)
            #expect(TestHTTP.withoutQuery(redirect) == endSession)
            let query = TestHTTP.query(redirect)
            #expect(query["post_logout_redirect_uri"] == stack.publicURL + "/")
            // The hint is alice's ID token, as the IdP signed it.
            let hint = try #require(query["id_token_hint"])
            let keys = JWKSKeySet(issuer: stack.issuer, httpClient: TestHTTP.client)
            let claims = try await JWTVerifier(policy: .idToken(issuer: stack.issuer, clientID: "agent0"), keySet: keys).verify(hint)
            #expect(claims.subject == alice.status["subject"]?.string)

            // The cookie is cleared and the session is gone, even for a browser that kept it.
            let cleared = try #require(answer.setCookie(Agent0Stack.sessionCookie))
            #expect(cleared.deletes)
            #expect(browser.cookie(Agent0Stack.sessionCookie) == nil)
            #expect(try await browser.get(stack.url("/auth/status")).jsonValue == ["authenticated": false])
            let stale = stack.browser()
            stale.setCookie(Agent0Stack.sessionCookie, alice.session)
            Self.expectError(try await stale.get(stack.url("/api/history")), 401, "not_signed_in")
            #expect(try await stale.get(stack.url("/auth/status")).jsonValue == ["authenticated": false])

            // The IdP accepts the redirect: it ends its own session and sends the browser back.
            let idp = try await browser.get(redirect)
            #expect(idp.status == 302, "\(idp)")
            #expect(idp.header("Location") == stack.publicURL + "/")
            #expect(browser.cookie("sb_idp_session") == nil, "the IdP's session ended too")

            // Signed out, a logout is harmless: it sends the page home.
            let again = try await stack.post(browser, "/logout", json: "{}", csrf: nil)
            #expect(again.status == 200)
            #expect(again.jsonValue == ["redirect": "/"])
        }
    }

    @Test("an unknown path answers 404 not_found as JSON")
    func notFound() async throws {
        try await withAgent0Stack { stack in
            let browser = stack.browser()
            Self.expectError(try await browser.get(stack.url("/nope")), 404, "not_found")
            Self.expectError(try await browser.get(stack.url("/static/nope.js")), 404, "not_found")
            Self.expectError(try await browser.send(.DELETE, stack.url("/api/history")), 404, "not_found")
        }
    }
}

extension JSONValue {
    var encodedString: String { String(decoding: encoded(), as: UTF8.self) }
}
