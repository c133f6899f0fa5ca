import Agent0
import Foundation
import OAuthCore
import SwitchboardTesting
import Testing

/// agent0's cookies: `agent0_session` and `agent0_login` are HttpOnly, SameSite=Lax, Path=/,
/// `Secure` exactly when the public URL is https; every sign-in gets a new session id.
@Suite("agent0 cookies and session ids")
struct CookieTests {
    static func expectFlags(_ cookie: SetCookie?, secure: Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let cookie else {
            Issue.record("no such Set-Cookie", sourceLocation: sourceLocation)
            return
        }
        #expect(cookie.has("HttpOnly"), "\(cookie)", sourceLocation: sourceLocation)
        #expect(cookie.attribute("SameSite")?.lowercased() == "lax", "\(cookie)", sourceLocation: sourceLocation)
        #expect(cookie.attribute("Path") == "/", "\(cookie)", sourceLocation: sourceLocation)
        #expect(cookie.has("Secure") == secure, "Secure \(secure ? "expected" : "unexpected"): \(cookie)", sourceLocation: sourceLocation)
        #expect(cookie.attribute("Domain") == nil, "host-only: \(cookie)", sourceLocation: sourceLocation)
    }

    @Test("over http: both cookies HttpOnly, SameSite=Lax, Path=/, without Secure; the login cookie lives the login timeout, the session one the ID token")
    func httpFlags() async throws {
        try await withAgent0Stack { stack in
            #expect(stack.publicURL.hasPrefix("http://"))
            let browser = stack.browser()
            let start = try await stack.startSignIn(browser)
            Self.expectFlags(start.login.setCookie(Agent0Stack.loginCookie), secure: false)
            #expect(start.login.setCookie(Agent0Stack.loginCookie)?.maxAge == Int(Agent0Options().loginTimeout.components.seconds))

            let callback = try await browser.get(start.callbackURL)
            #expect(callback.status == 302)
            let session = callback.setCookie(Agent0Stack.sessionCookie)
            Self.expectFlags(session, secure: false)
            Self.expectFlags(callback.setCookie(Agent0Stack.loginCookie), secure: false)
            #expect(callback.setCookie(Agent0Stack.loginCookie)?.deletes == true, "the sign-in attempt ends with the callback")

            // The session cookie expires with the ID token (expires_at in /auth/status).
            let status = try await browser.get(stack.url("/auth/status"))
            let expires = try #require(status.jsonValue?["expires_at"]?.string.flatMap { ISO8601DateFormatter().date(from: $0) })
            let maxAge = try #require(session?.maxAge)
            #expect(abs(Double(maxAge) - expires.timeIntervalSinceNow) < 10, "Max-Age \(maxAge) vs expires_at \(expires)")

            // The logout's clearing cookie carries the same flags.
            let csrf = try #require(status.jsonValue?["csrf_token"]?.string)
            let logout = try await stack.post(browser, "/logout", json: "{}", csrf: csrf)
            Self.expectFlags(logout.setCookie(Agent0Stack.sessionCookie), secure: false)
            #expect(logout.setCookie(Agent0Stack.sessionCookie)?.deletes == true)
        }
    }

    @Test("with an https public URL (behind a TLS proxy): both cookies Secure; redirect URI and allowed Origin are the https ones")
    func httpsFlags() async throws {
        let publicURL = "https://agent0.test"
        try await withAgent0Stack(.init(publicURL: publicURL)) { stack in
            let browser = stack.browser()
            let start = try await stack.startSignIn(browser)
            #expect(TestHTTP.query(start.authorizeURL)["redirect_uri"] == publicURL + "/callback")
            Self.expectFlags(start.login.setCookie(Agent0Stack.loginCookie), secure: true)

            let callback = try await browser.get(start.callbackURL)
            #expect(callback.status == 302, "\(callback)")
            Self.expectFlags(callback.setCookie(Agent0Stack.sessionCookie), secure: true)
            Self.expectFlags(callback.setCookie(Agent0Stack.loginCookie), secure: true)

            let status = try await browser.get(stack.url("/auth/status"))
            let csrf = try #require(status.jsonValue?["csrf_token"]?.string)
            // The page's origin is the public one; the listener's own http origin is foreign.
            let own = try await stack.post(browser, "/api/chat/resume", json: #"{"consent_id":"c-1"}"#, csrf: csrf, origin: publicURL)
            #expect(own.jsonValue?["error"]?.string == "nothing_waiting", "\(own)")
            let listener = try await stack.post(browser, "/api/chat/resume", json: #"{"consent_id":"c-1"}"#, csrf: csrf, origin: stack.baseURL)
            #expect(listener.jsonValue?["error"]?.string == "csrf_failed", "\(listener)")

            let logout = try await stack.post(browser, "/logout", json: "{}", csrf: csrf, origin: publicURL)
            Self.expectFlags(logout.setCookie(Agent0Stack.sessionCookie), secure: true)
            #expect(TestHTTP.query(logout.jsonValue?["redirect"]?.string ?? "")["post_logout_redirect_uri"] == publicURL + "/")
        }
    }

    @Test("every sign-in gets a new session id: signing in again replaces the browser's session, and the old id no longer works")
    func newSessionAtEverySignIn() async throws {
        try await withAgent0Stack { stack in
            let browser = stack.browser()
            // A session id planted before sign-in (fixation) is never adopted.
            let planted = RandomToken.make()
            browser.setCookie(Agent0Stack.sessionCookie, planted)
            let first = try await stack.signIn(browser)
            #expect(first.session != planted)

            // Again in the same browser (the IdP remembers the user: no form this time).
            let second = try await stack.signIn(browser)
            #expect(second.session != first.session)
            #expect(second.csrf != first.csrf, "a new CSRF token with the new session")
            #expect(browser.cookie(Agent0Stack.sessionCookie) == second.session)

            let old = stack.browser()
            old.setCookie(Agent0Stack.sessionCookie, first.session)
            RouteTests.expectError(try await old.get(stack.url("/api/history")), 401, "not_signed_in")
            #expect(try await old.get(stack.url("/auth/status")).jsonValue == ["authenticated": false])
            // The old CSRF token does not work with the new session either.
            RouteTests.expectError(try await stack.post(browser, "/api/chat/resume", json: #"{"consent_id":"c"}"#, csrf: first.csrf), 403, "csrf_failed")
            #expect(try await browser.get(stack.url("/api/history")).status == 200)

            // Another browser of the same user has its own session, untouched by these.
            let other = stack.browser()
            let third = try await stack.signIn(other)
            #expect(Set([first.session, second.session, third.session]).count == 3)
            #expect(try await browser.get(stack.url("/api/history")).status == 200)
            #expect(try await other.get(stack.url("/api/history")).status == 200)
        }
    }
}
