import Foundation
import OAuthCore
import SwitchboardTesting
import Testing

/// OIDC sign-in with PKCE S256 against a live IdP: `/oauth2/v1/authorize`, the token endpoint
/// (client_secret_basic and client_secret_post), the ID token, sessions and `/userinfo`.
@Suite("Authorization code flow with PKCE")
struct AuthorizationCodeFlowTests {
    @Test func pkceChallengeMatchesTheRFC7636Example() {
        // RFC 7636 Appendix B.
        #expect(PKCE(verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        #expect(PKCE.make().verifier.count >= 43)
    }

    @Test func signInWithBasicAuthIssuesAVerifiableIDToken() async throws {
        try await withIdP { idp in
            let pkce = PKCE.make()
            let state = "state-" + UUID().uuidString
            let nonce = "nonce-" + UUID().uuidString
            let params = idp.authorizeParameters(pkce: pkce, state: state, nonce: nonce)

            let page = try await idp.get(idp.authorizeURL(params))
            #expect(page.status == 200)
            #expect(page.headers.first(name: "Content-Type")?.hasPrefix("text/html") == true)
            let hidden = TestHTTP.hiddenFields(page.body)
            #expect(hidden.contains { $0 == ("code_challenge", pkce.challenge) })
            #expect(hidden.contains { $0 == ("state", state) })
            #expect(hidden.contains { $0 == ("nonce", nonce) })
            #expect(hidden.contains { $0 == ("redirect_uri", IdPHarness.redirectURI) })
            #expect(page.body.contains("name=\"password\""))

            let login = try await idp.post(idp.authorizeEndpoint, form: hidden + [("username", "alice"), ("password", "alice-dev-password")])
            #expect(login.status == 302)
            let location = try #require(login.headers.first(name: "Location"))
            #expect(location.hasPrefix(IdPHarness.redirectURI + "?"))
            let query = TestHTTP.query(location)
            #expect(query["state"] == state)
            let code = try #require(query["code"])
            let setCookie = try #require(login.headers["Set-Cookie"].first)
            #expect(setCookie.hasPrefix("sb_idp_session="))
            #expect(setCookie.contains("HttpOnly"))

            let tokens = try await idp.redeem(code: code, verifier: pkce.verifier, auth: .basic("agent0", "agent0-dev-secret"))
            #expect(tokens.status == 200, "\(tokens.body)")
            #expect(tokens.json["token_type"] as? String == "Bearer")
            #expect((tokens.json["expires_in"] as? NSNumber)?.intValue == 3600)
            #expect(tokens.json["refresh_token"] == nil)
            let idToken = try #require(tokens.json["id_token"] as? String)
            #expect((tokens.json["access_token"] as? String)?.isEmpty == false)

            // Verified with OAuthCore against the JWKS found through discovery at the issuer.
            let claims = try await idp.verifyIDToken(idToken)
            let now = Date()
            #expect(claims.issuer == idp.issuer)
            #expect(claims.subject == "00u-alice")
            #expect(claims.audience == ["agent0"])
            #expect(abs(claims.expiresAt.timeIntervalSince(now) - 3600) < 30)
            #expect(abs((claims.issuedAt ?? .distantPast).timeIntervalSince(now)) < 30)
            #expect(claims.nonce == nonce)
            #expect(claims.email == "alice@example.test")
            #expect(claims.name == "Alice Example")
            #expect(claims.uid == "00u-alice")

            let jwt = try DecodedJWT(idToken)
            #expect(jwt.header["alg"] as? String == "RS256")
            let orgKids = try await idp.kids(at: idp.issuer + "/oauth2/v1/keys")
            let kid = try #require(jwt.header["kid"] as? String)
            #expect(orgKids.contains(kid))
            #expect(jwt.claims["aud"] as? String == "agent0")
        }
    }

    @Test func clientSecretPostIsAccepted() async throws {
        try await withIdP { idp in
            let signIn = try await idp.signIn()
            let tokens = try await idp.redeem(code: signIn.code, verifier: signIn.pkce.verifier, auth: .post("agent0", "agent0-dev-secret"))
            #expect(tokens.status == 200, "\(tokens.body)")
            let idToken = try #require(tokens.json["id_token"] as? String)
            let claims = try await idp.verifyIDToken(idToken)
            #expect(claims.subject == "00u-alice")
            #expect(claims.nonce == signIn.nonce)
        }
    }

    @Test func wrongCodeVerifierIsInvalidGrant() async throws {
        try await withIdP { idp in
            let signIn = try await idp.signIn()
            expectError(try await idp.redeem(code: signIn.code, verifier: PKCE.make().verifier), "invalid_grant")
        }
    }

    @Test func replayedCodeIsInvalidGrant() async throws {
        try await withIdP { idp in
            let signIn = try await idp.signIn()
            let first = try await idp.redeem(code: signIn.code, verifier: signIn.pkce.verifier)
            #expect(first.status == 200)
            expectError(try await idp.redeem(code: signIn.code, verifier: signIn.pkce.verifier), "invalid_grant")
        }
    }

    @Test func unknownCodeIsInvalidGrant() async throws {
        try await withIdP { idp in
            expectError(try await idp.redeem(code: "no-such-code", verifier: PKCE.make().verifier), "invalid_grant")
        }
    }

    @Test func redirectURIDifferentFromTheAuthorizationRequestIsInvalidGrant() async throws {
        try await withIdP { idp in
            // Registered for the client, but not the one the code was issued for.
            let signIn = try await idp.signIn()
            expectError(
                try await idp.redeem(code: signIn.code, verifier: signIn.pkce.verifier, redirectURI: IdPHarness.otherRegisteredRedirectURI), "invalid_grant")
        }
    }

    @Test func unregisteredRedirectURIShowsAnErrorPageWithoutRedirecting() async throws {
        try await withIdP { idp in
            let params = idp.authorizeParameters(pkce: .make(), redirectURI: "http://127.0.0.1:3000/evil")
            let page = try await idp.get(idp.authorizeURL(params))
            #expect(page.status == 400)
            #expect(page.headers.first(name: "Location") == nil)
            #expect(page.headers.first(name: "Content-Type")?.hasPrefix("text/html") == true)
            #expect(!page.body.contains("name=\"password\""))
        }
    }

    @Test func unknownClientShowsAnErrorPage() async throws {
        try await withIdP { idp in
            var params = idp.authorizeParameters(pkce: .make())
            params[0] = ("client_id", "no-such-client")
            let page = try await idp.get(idp.authorizeURL(params))
            #expect(page.status == 400)
            #expect(page.headers.first(name: "Location") == nil)
        }
    }

    @Test func missingCodeChallengeRedirectsWithInvalidRequest() async throws {
        try await withIdP { idp in
            let params = idp.authorizeParameters(pkce: .make(), state: "s-1").filter { $0.0 != "code_challenge" && $0.0 != "code_challenge_method" }
            let answer = try await idp.get(idp.authorizeURL(params))
            #expect(answer.status == 302)
            let location = try #require(answer.headers.first(name: "Location"))
            #expect(location.hasPrefix(IdPHarness.redirectURI + "?"))
            let query = TestHTTP.query(location)
            #expect(query["error"] == "invalid_request")
            #expect(query["error_description"]?.isEmpty == false)
            #expect(query["state"] == "s-1")
            #expect(query["code"] == nil)
        }
    }

    @Test func plainCodeChallengeMethodIsRefused() async throws {
        try await withIdP { idp in
            let verifier = PKCE.make().verifier
            let params = idp.authorizeParameters(pkce: .make(), state: "s-2").map { pair -> (String, String) in
                switch pair.0 {
                case "code_challenge": return (pair.0, verifier)
                case "code_challenge_method": return (pair.0, "plain")
                default: return pair
                }
            }
            let answer = try await idp.get(idp.authorizeURL(params))
            #expect(answer.status == 302)
            let query = TestHTTP.query(answer.headers.first(name: "Location") ?? "")
            #expect(query["error"] == "invalid_request")
            #expect(query["state"] == "s-2")
            #expect(query["code"] == nil)
        }
    }

    @Test func authorizeWithoutOpenIDScopeRedirectsWithInvalidScope() async throws {
        try await withIdP { idp in
            let params = idp.authorizeParameters(pkce: .make(), scope: "profile email")
            let answer = try await idp.get(idp.authorizeURL(params))
            #expect(answer.status == 302)
            #expect(TestHTTP.query(answer.headers.first(name: "Location") ?? "")["error"] == "invalid_scope")
        }
    }

    @Test func wrongPasswordShowsTheLoginPageAgainWith401() async throws {
        try await withIdP { idp in
            let answer = try await idp.submitLogin(idp.authorizeParameters(pkce: .make()), username: "alice", password: "not-the-password")
            #expect(answer.status == 401)
            #expect(answer.headers.first(name: "Location") == nil)
            #expect(IdPBrowser.sessionCookie(answer) == nil)
            #expect(answer.body.contains("name=\"password\""))
            #expect(answer.body.contains("Wrong username or password"))
            #expect(!answer.body.contains("not-the-password"))
            // The authorization request survives the failed attempt.
            #expect(TestHTTP.hiddenFields(answer.body).contains { $0.0 == "code_challenge" })
            let unknownUser = try await idp.submitLogin(idp.authorizeParameters(pkce: .make()), username: "mallory", password: "alice-dev-password")
            #expect(unknownUser.status == 401)
        }
    }

    @Test func wrongClientSecretIsInvalidClient() async throws {
        try await withIdP { idp in
            let signIn = try await idp.signIn()
            let basic = try await idp.redeem(code: signIn.code, verifier: signIn.pkce.verifier, auth: .basic("agent0", "wrong-secret"))
            expectError(basic, "invalid_client", status: 401)
            #expect(basic.headers.first(name: "WWW-Authenticate") != nil)
            let post = try await idp.redeem(code: signIn.code, verifier: signIn.pkce.verifier, auth: .post("agent0", "wrong-secret"))
            expectError(post, "invalid_client", status: 401)
            expectError(try await idp.redeem(code: signIn.code, verifier: signIn.pkce.verifier, auth: .none), "invalid_client", status: 401)
        }
    }

    @Test func agentCannotRedeemAnAuthorizationCode() async throws {
        try await withIdP { idp in
            let signIn = try await idp.signIn()
            let answer = try await idp.redeem(
                code: signIn.code, verifier: signIn.pkce.verifier, auth: .none, extra: try idp.assertion(for: idp.tokenEndpoint))
            expectError(answer, "unauthorized_client")
        }
    }

    @Test func sessionCookieSkipsTheLoginPage() async throws {
        try await withIdP { idp in
            let first = try await idp.signIn()
            let pkce = PKCE.make()
            let answer = try await idp.get(idp.authorizeURL(idp.authorizeParameters(pkce: pkce, state: "again")), headers: [("Cookie", first.cookie)])
            #expect(answer.status == 302)
            let query = TestHTTP.query(answer.headers.first(name: "Location") ?? "")
            #expect(query["state"] == "again")
            let code = try #require(query["code"])
            let tokens = try await idp.redeem(code: code, verifier: pkce.verifier)
            #expect(tokens.status == 200)
            let idToken = try #require(tokens.json["id_token"] as? String)
            let claims = try await idp.verifyIDToken(idToken)
            #expect(claims.subject == "00u-alice")
            // Single sign-on: the new ID token carries the original sign-in time.
            let firstToken = try await idp.redeem(code: first.code, verifier: first.pkce.verifier)
            let firstAuthTime = try DecodedJWT(try #require(firstToken.json["id_token"] as? String)).int("auth_time")
            #expect(firstAuthTime != nil)
            #expect(try DecodedJWT(idToken).int("auth_time") == firstAuthTime)

            // prompt=login forces the page even with a session; without a session prompt=none fails.
            let forced = try await idp.get(idp.authorizeURL(idp.authorizeParameters(pkce: pkce) + [("prompt", "login")]), headers: [("Cookie", first.cookie)])
            #expect(forced.status == 200)
            let none = try await idp.get(idp.authorizeURL(idp.authorizeParameters(pkce: pkce) + [("prompt", "none")]))
            #expect(none.status == 302)
            #expect(TestHTTP.query(none.headers.first(name: "Location") ?? "")["error"] == "login_required")
        }
    }

    @Test func logoutEndsTheSession() async throws {
        try await withIdP { idp in
            let signIn = try await idp.signIn()
            let out = try await idp.get(idp.issuer + "/oauth2/v1/logout?post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2F&state=bye",
                                        headers: [("Cookie", signIn.cookie)])
            #expect(out.status == 302)
            #expect(out.headers.first(name: "Location") == "http://127.0.0.1:3000/?state=bye")
            let again = try await idp.get(idp.authorizeURL(idp.authorizeParameters(pkce: .make())), headers: [("Cookie", signIn.cookie)])
            #expect(again.status == 200, "the old session cookie must no longer sign the user in")
            // No open redirect: an unregistered post_logout_redirect_uri is not followed.
            let open = try await idp.get(idp.issuer + "/oauth2/v1/logout?post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F")
            #expect(open.status == 200)
            #expect(open.headers.first(name: "Location") == nil)
        }
    }

    @Test func stateWithMarkupSurvivesTheLoginPageEscaped() async throws {
        try await withIdP { idp in
            let state = "\"><script>alert(1)</script>&x=1"
            let params = idp.authorizeParameters(pkce: .make(), state: state)
            let page = try await idp.get(idp.authorizeURL(params))
            #expect(!page.body.contains("<script>"))
            let answer = try await idp.post(idp.authorizeEndpoint, form: TestHTTP.hiddenFields(page.body) + [("username", "bob"), ("password", "bob-dev-password")])
            #expect(answer.status == 302)
            #expect(TestHTTP.query(answer.headers.first(name: "Location") ?? "")["state"] == state)
        }
    }

    @Test func userinfoReturnsTheUserForTheAccessToken() async throws {
        try await withIdP { idp in
            let tokens = try await idp.tokens(for: "alice")
            let answer = try await idp.get(idp.userinfoEndpoint, headers: [("Authorization", "Bearer " + tokens.accessToken)])
            #expect(answer.status == 200, "\(answer.body)")
            #expect(answer.json["sub"] as? String == "00u-alice")
            #expect(answer.json["email"] as? String == "alice@example.test")
            #expect(answer.json["name"] as? String == "Alice Example")
            #expect(answer.json["preferred_username"] as? String == "alice")
            #expect(answer.json["uid"] as? String == "00u-alice")
            let post = try await idp.post(idp.userinfoEndpoint, form: [], headers: [("Authorization", "Bearer " + tokens.accessToken)])
            #expect(post.status == 200)
        }
    }

    @Test func revokedAccessTokenIsRefusedByUserinfo() async throws {
        try await withIdP { idp in
            let tokens = try await idp.tokens(for: "alice")
            let basic = [("Authorization", "Basic " + Data("agent0:agent0-dev-secret".utf8).base64EncodedString())]
            let revoked = try await idp.post(idp.revokeEndpoint, form: [("token", tokens.accessToken), ("token_type_hint", "access_token")], headers: basic)
            #expect(revoked.status == 200)
            expectError(try await idp.get(idp.userinfoEndpoint, headers: [("Authorization", "Bearer " + tokens.accessToken)]), "invalid_token", status: 401)
        }
    }

    @Test func formEncodingWithPlusSignsIsUnderstood() async throws {
        try await withIdP { idp in
            let signIn = try await idp.signIn()
            let body = "grant_type=authorization_code&code=\(signIn.code)&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fcallback"
                + "&code_verifier=\(signIn.pkce.verifier)&client_id=agent0&client_secret=agent0-dev-secret&scope=openid+email"
            let answer = try await idp.post(idp.tokenEndpoint, body: body, contentType: "application/x-www-form-urlencoded; charset=UTF-8")
            #expect(answer.status == 200, "\(answer.body)")
        }
    }

    @Test func userinfoRefusesGarbageAndNonAccessTokens() async throws {
        try await withIdP { idp in
            let garbage = try await idp.get(idp.userinfoEndpoint, headers: [("Authorization", "Bearer not-a-token")])
            expectError(garbage, "invalid_token", status: 401)
            #expect(garbage.headers.first(name: "WWW-Authenticate")?.hasPrefix("Bearer") == true)
            expectError(try await idp.get(idp.userinfoEndpoint), "invalid_token", status: 401)
            // An ID token is not an access token (typ JWT, aud the client).
            let tokens = try await idp.tokens(for: "alice")
            expectError(try await idp.get(idp.userinfoEndpoint, headers: [("Authorization", "Bearer " + tokens.idToken)]), "invalid_token", status: 401)
        }
    }

    @Test func discoveryDocumentDescribesTheOrg() async throws {
        try await withIdP { idp in
            let doc = try await idp.get(idp.issuer + "/.well-known/openid-configuration")
            #expect(doc.status == 200)
            #expect(doc.json["issuer"] as? String == idp.issuer)
            #expect(doc.json["token_endpoint"] as? String == idp.tokenEndpoint)
            #expect(doc.json["jwks_uri"] as? String == idp.issuer + "/oauth2/v1/keys")
            #expect(doc.json["code_challenge_methods_supported"] as? [String] == ["S256"])
            let keys = try await idp.get(idp.issuer + "/oauth2/v1/keys")
            let list = try #require(keys.json["keys"] as? [[String: Any]])
            #expect(!list.isEmpty)
            for key in list {
                #expect(key["d"] == nil && key["p"] == nil, "the JWKS must hold public keys only")
            }
        }
    }
}
