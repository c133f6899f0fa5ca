import Foundation
import OAuthCore
import SwitchboardTesting
import Testing

/// `/login` and `/callback`: the authorization request agent0 makes, and every way it refuses
/// a callback (wrong state, no sign-in in progress, the IdP's error, an ID token with another
/// nonce, a failing token endpoint). A refused callback never starts a session.
@Suite("agent0 sign-in: /login and the checks of /callback")
struct CallbackTests {
    /// The URL with query item `name` set to `value`.
    static func replacing(_ name: String, with value: String, in url: String) throws -> String {
        var components = try #require(URLComponents(string: url))
        components.queryItems = (components.queryItems ?? []).map { $0.name == name ? URLQueryItem(name: name, value: value) : $0 }
        return try #require(components.string)
    }

    /// A refused callback: the error, the login cookie cleared, no session.
    static func expectRefused(_ answer: Answer, _ status: Int, _ code: String, browser: Browser, sourceLocation: SourceLocation = #_sourceLocation) {
        RouteTests.expectError(answer, status, code, sourceLocation: sourceLocation)
        #expect(answer.setCookie(Agent0Stack.loginCookie)?.deletes == true, "the sign-in attempt is cleared: \(answer.headers)", sourceLocation: sourceLocation)
        #expect(answer.setCookie(Agent0Stack.sessionCookie) == nil, "no session cookie", sourceLocation: sourceLocation)
        #expect(browser.cookie(Agent0Stack.sessionCookie) == nil, sourceLocation: sourceLocation)
    }

    @Test("GET /login: 302 to the IdP's authorization endpoint with code, PKCE S256, state, nonce and agent0's redirect URI")
    func login() async throws {
        try await withAgent0Stack { stack in
            let browser = stack.browser()
            let first = try await browser.get(stack.url("/login"))
            #expect(first.status == 302)
            #expect(first.header("Cache-Control") == "no-store")
            let location = try #require(first.header("Location"))
            let discovery = try await browser.get(stack.issuer + "/.well-known/openid-configuration")
            #expect(TestHTTP.withoutQuery(location) == discovery.jsonValue?["authorization_endpoint"]?.string)
            let q = TestHTTP.query(location)
            #expect(q["response_type"] == "code")
            #expect(q["client_id"] == "agent0")
            #expect(q["redirect_uri"] == stack.publicURL + "/callback")
            #expect(q["code_challenge_method"] == "S256")
            #expect(q["scope"]?.split(separator: " ").contains("openid") == true)
            for name in ["state", "nonce", "code_challenge"] {
                #expect((q[name]?.count ?? 0) >= 32, "\(name) carries at least 192 bits")
            }
            // The verifier, state and nonce stay on the server: the browser holds an opaque id.
            let loginCookie = try #require(first.setCookie(Agent0Stack.loginCookie))
            #expect(!loginCookie.value.isEmpty)
            #expect(![q["state"], q["nonce"]].contains(loginCookie.value))

            // Every attempt is new.
            let second = try await browser.get(stack.url("/login"))
            let q2 = TestHTTP.query(try #require(second.header("Location")))
            #expect(q2["state"] != q["state"])
            #expect(q2["nonce"] != q["nonce"])
            #expect(q2["code_challenge"] != q["code_challenge"])
            #expect(second.setCookie(Agent0Stack.loginCookie)?.value != loginCookie.value)
        }
    }

    @Test("a callback whose state is not this browser's: 400 invalid_state; the attempt is spent (the right state then finds login_expired)")
    func wrongState() async throws {
        try await withAgent0Stack { stack in
            let browser = stack.browser()
            let start = try await stack.startSignIn(browser)
            let loginID = try #require(browser.cookie(Agent0Stack.loginCookie))
            let forged = try Self.replacing("state", with: RandomToken.make(), in: start.callbackURL)
            Self.expectRefused(try await browser.get(forged), 400, "invalid_state", browser: browser)

            // The genuine callback (a valid code and state) now finds no sign-in in progress.
            browser.setCookie(Agent0Stack.loginCookie, loginID)
            Self.expectRefused(try await browser.get(start.callbackURL), 400, "login_expired", browser: browser)
            #expect(try await browser.get(stack.url("/auth/status")).jsonValue == ["authenticated": false])
        }
    }

    @Test("a callback without a pending sign-in: no login cookie, an unknown one, one already used, or one past the login timeout → 400 login_expired")
    func noPendingSignIn() async throws {
        try await withAgent0Stack(.init(loginTimeout: .seconds(1))) { stack in
            // No login cookie at all (another browser, or cookies cleared).
            let browser = stack.browser()
            let start = try await stack.startSignIn(browser)
            let loginID = try #require(browser.cookie(Agent0Stack.loginCookie))
            browser.setCookie(Agent0Stack.loginCookie, nil)
            Self.expectRefused(try await browser.get(start.callbackURL), 400, "login_expired", browser: browser)

            // A login id agent0 never issued.
            browser.setCookie(Agent0Stack.loginCookie, RandomToken.make())
            Self.expectRefused(try await browser.get(start.callbackURL), 400, "login_expired", browser: browser)

            // The login timeout passed: the verifier is gone.
            browser.setCookie(Agent0Stack.loginCookie, loginID)
            try await Task.sleep(for: .seconds(1.5))
            Self.expectRefused(try await browser.get(start.callbackURL), 400, "login_expired", browser: browser)
        }
        try await withAgent0Stack { stack in
            // A replay: the same callback (code, state, login cookie) a second time.
            let browser = stack.browser()
            let start = try await stack.startSignIn(browser)
            let loginID = try #require(browser.cookie(Agent0Stack.loginCookie))
            let first = try await browser.get(start.callbackURL)
            #expect(first.status == 302, "\(first)")
            let session = try #require(browser.cookie(Agent0Stack.sessionCookie))
            let replayer = stack.browser()
            replayer.setCookie(Agent0Stack.loginCookie, loginID)
            Self.expectRefused(try await replayer.get(start.callbackURL), 400, "login_expired", browser: replayer)
            // The replay did not disturb the session it tried to copy.
            #expect(browser.cookie(Agent0Stack.sessionCookie) == session)
            #expect(try await browser.get(stack.url("/api/history")).status == 200)
        }
    }

    @Test("the IdP answers error=access_denied: 400 access_denied, no session")
    func accessDenied() async throws {
        try await withAgent0Stack(.init(identity: .standIn(.deny))) { stack in
            let browser = stack.browser()
            let start = try await stack.startSignIn(browser)
            #expect(TestHTTP.query(start.callbackURL)["error"] == "access_denied")
            let answer = try await browser.get(start.callbackURL)
            Self.expectRefused(answer, 400, "access_denied", browser: browser)
            #expect(stack.standIn?.idTokens.isEmpty == true)
        }
    }

    @Test("an ID token whose nonce is not the one this browser's request carried: 400 invalid_nonce, no session")
    func wrongNonce() async throws {
        try await withAgent0Stack(.init(identity: .standIn(.wrongNonce))) { stack in
            let browser = stack.browser()
            let start = try await stack.startSignIn(browser)
            let answer = try await browser.get(start.callbackURL)
            Self.expectRefused(answer, 400, "invalid_nonce", browser: browser)
            // The code was redeemed and a correctly signed ID token came back: only the nonce failed.
            #expect(stack.standIn?.idTokens.count == 1)
            #expect(try await browser.get(stack.url("/auth/status")).jsonValue == ["authenticated": false])
        }
    }

    @Test("the same stand-in provider, behaving: the sign-in succeeds (the refusals above are the checks, not the stand-in)")
    func standInSignsIn() async throws {
        try await withAgent0Stack(.init(identity: .standIn(.honest(lifetime: 600)))) { stack in
            let browser = stack.browser()
            let user = try await stack.signIn(browser)
            #expect(user.status["subject"]?.string == StandInOIDCProvider.subject)
            #expect(user.status["email"]?.string == StandInOIDCProvider.email)
            #expect(stack.standIn?.idTokens.count == 1)
        }
    }

    @Test("the IdP's token endpoint fails: 502 token_exchange_failed, no session")
    func tokenEndpointFails() async throws {
        try await withAgent0Stack(.init(identity: .standIn(.brokenTokenEndpoint))) { stack in
            let browser = stack.browser()
            let start = try await stack.startSignIn(browser)
            Self.expectRefused(try await browser.get(start.callbackURL), 502, "token_exchange_failed", browser: browser)
        }
    }

    @Test("a code the IdP does not know: refused (400), no session")
    func unknownCode() async throws {
        try await withAgent0Stack { stack in
            let browser = stack.browser()
            let start = try await stack.startSignIn(browser)
            let forged = try Self.replacing("code", with: RandomToken.make(), in: start.callbackURL)
            let answer = try await browser.get(forged)
            #expect(answer.status == 400, "\(answer)")
            #expect(answer.jsonValue?["error"]?.string != nil)
            #expect(browser.cookie(Agent0Stack.sessionCookie) == nil)
            #expect(try await browser.get(stack.url("/auth/status")).jsonValue == ["authenticated": false])
        }
    }
}
