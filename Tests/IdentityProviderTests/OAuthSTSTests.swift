import Foundation
import OAuthCore
import SwitchboardTesting
import Testing

/// Okta-style OAuth STS (PROTOCOLS.md D): interaction_required, the consent pages behind
/// interaction_uri, the brokered third-party token, and revocation.
@Suite("OAuth STS with brokered consent")
struct OAuthSTSTests {
    @Test func consentThenExchangeIssuesTheThirdPartyToken() async throws {
        try await withIdP { idp in
            let alice = try await idp.tokens(for: "alice")

            let first = try await idp.sts(alice.idToken)
            expectError(first, "interaction_required")
            let uri = try #require(first.json["interaction_uri"] as? String)
            #expect(uri.hasPrefix(idp.issuer + "/oauth2/v1/interaction/"))
            #expect((first.json["error_description"] as? String)?.isEmpty == false)

            // Without a session the page asks to sign in.
            let anonymous = try await idp.consentPage(uri, cookie: nil)
            #expect(anonymous.status == 401)
            #expect(anonymous.body.contains("Sign in"))
            #expect(IdPBrowser.csrf(in: anonymous.body) == nil)

            // Signed in as alice (through the authorize flow): the consent page with its csrf field.
            let page = try await idp.consentPage(uri, cookie: alice.cookie)
            #expect(page.status == 200)
            #expect(page.body.contains("GitHub"))
            #expect(page.body.contains(IdPHarness.agentID))
            #expect(page.headers.first(name: "X-Frame-Options") == "DENY")
            let csrf = try #require(IdPBrowser.csrf(in: page.body))
            #expect(!csrf.isEmpty)
            let approved = try await idp.decide(uri, cookie: alice.cookie, csrf: csrf, decision: "approve")
            #expect(approved.status == 200)
            #expect(approved.body.contains("connected"))

            // The agent repeats the identical request.
            let answer = try await idp.sts(alice.idToken)
            #expect(answer.status == 200, "\(answer.body)")
            #expect(answer.json["issued_token_type"] as? String == IdPHarness.stsType)
            #expect(answer.json["token_type"] as? String == "Bearer")
            #expect((answer.json["expires_in"] as? NSNumber)?.intValue == 3600)
            #expect(answer.json["scope"] as? String == "repo")
            let token = try #require(answer.json["access_token"] as? String)
            let jwt = try DecodedJWT(token)
            #expect(jwt.header["typ"] as? String == "at+jwt")
            #expect(jwt.claims["aud"] as? String == "http://127.0.0.1:7000")
            #expect(jwt.claims["iss"] as? String == idp.githubIssuer)
            #expect(jwt.claims["sub"] as? String == "00u-alice")
            #expect(jwt.claims["client_id"] as? String == IdPHarness.agentID)

            let keys = JWKSKeySet(issuer: idp.githubIssuer, jwksURI: idp.githubIssuer + "/keys", httpClient: TestHTTP.client)
            let claims = try await JWTVerifier(policy: .accessToken(issuer: idp.githubIssuer, resource: "http://127.0.0.1:7000"), keySet: keys).verify(token)
            #expect(claims.scopes == ["repo"])
            #expect(claims.resource == IdPHarness.githubResource)
            // The app's metadata points at the same keys.
            let metadata = try await idp.get(idp.githubIssuer + "/.well-known/oauth-authorization-server")
            #expect(metadata.json["issuer"] as? String == idp.githubIssuer)
            #expect(metadata.json["jwks_uri"] as? String == idp.githubIssuer + "/keys")

            // The interaction is used up.
            #expect(try await idp.consentPage(uri, cookie: alice.cookie).status == 404)
            #expect(try await idp.decide(uri, cookie: alice.cookie, csrf: csrf, decision: "approve").status == 404)
        }
    }

    @Test func consentIsPerResource() async throws {
        try await withIdP { idp in
            let alice = try await idp.tokens(for: "alice")
            try await idp.approve(try await idp.interactionURI(alice.idToken), cookie: alice.cookie)
            #expect(try await idp.sts(alice.idToken).status == 200)
            // Another app still needs its own consent, and bob is not covered by alice's.
            expectError(try await idp.sts(alice.idToken, resource: "orn:dev:idp:github-mcp"), "interaction_required")
            let bob = try await idp.tokens(for: "bob")
            expectError(try await idp.sts(bob.idToken), "interaction_required")
        }
    }

    @Test func wrongCSRFIsForbidden() async throws {
        try await withIdP { idp in
            let alice = try await idp.tokens(for: "alice")
            let uri = try await idp.interactionURI(alice.idToken)
            let page = try await idp.consentPage(uri, cookie: alice.cookie)
            let csrf = try #require(IdPBrowser.csrf(in: page.body))
            // A different first character (the token is hex: "0" would sometimes be the same one).
            let forged = (csrf.first == "0" ? "1" : "0") + csrf.dropFirst()
            #expect(try await idp.decide(uri, cookie: alice.cookie, csrf: forged, decision: "approve").status == 403)
            #expect(try await idp.decide(uri, cookie: alice.cookie, csrf: "", decision: "approve").status == 403)
            let noField = try await idp.post(uri, form: [("decision", "approve")], headers: [("Cookie", alice.cookie)])
            #expect(noField.status == 403)
            expectError(try await idp.sts(alice.idToken), "interaction_required")
            // The interaction survives the failed attempts.
            try await idp.approve(uri, cookie: alice.cookie)
            #expect(try await idp.sts(alice.idToken).status == 200)
        }
    }

    @Test func csrfIsBoundToTheSession() async throws {
        try await withIdP { idp in
            let alice = try await idp.tokens(for: "alice")
            let uri = try await idp.interactionURI(alice.idToken)
            let csrf = try #require(IdPBrowser.csrf(in: try await idp.consentPage(uri, cookie: alice.cookie).body))
            // alice signed in again elsewhere: the first session's csrf does not work with the second session.
            let other = try await idp.signIn(as: "alice")
            #expect(try await idp.decide(uri, cookie: other.cookie, csrf: csrf, decision: "approve").status == 403)
        }
    }

    @Test func bobCannotApproveAlicesInteraction() async throws {
        try await withIdP { idp in
            let alice = try await idp.tokens(for: "alice")
            let uri = try await idp.interactionURI(alice.idToken)
            let bob = try await idp.signIn(as: "bob")
            let page = try await idp.consentPage(uri, cookie: bob.cookie)
            #expect(page.status == 403)
            #expect(IdPBrowser.csrf(in: page.body) == nil)
            // Even with a csrf value (alice's, or one for bob's own session).
            let alicesCSRF = try #require(IdPBrowser.csrf(in: try await idp.consentPage(uri, cookie: alice.cookie).body))
            #expect(try await idp.decide(uri, cookie: bob.cookie, csrf: alicesCSRF, decision: "approve").status == 403)
            expectError(try await idp.sts(alice.idToken), "interaction_required")
            // Not approved and not consumed: alice can still approve it.
            try await idp.approve(uri, cookie: alice.cookie)
            #expect(try await idp.sts(alice.idToken).status == 200)
        }
    }

    @Test func denyLeavesNoConsent() async throws {
        try await withIdP { idp in
            let alice = try await idp.tokens(for: "alice")
            let uri = try await idp.interactionURI(alice.idToken)
            let csrf = try #require(IdPBrowser.csrf(in: try await idp.consentPage(uri, cookie: alice.cookie).body))
            let denied = try await idp.decide(uri, cookie: alice.cookie, csrf: csrf, decision: "deny")
            #expect(denied.status == 200)
            #expect(denied.body.contains("not connected"))
            let again = try await idp.sts(alice.idToken)
            expectError(again, "interaction_required")
            #expect(again.json["interaction_uri"] as? String != uri, "a new interaction is needed")
            #expect(try await idp.consentPage(uri, cookie: alice.cookie).status == 404)
        }
    }

    @Test func revokeRemovesTheConsent() async throws {
        try await withIdP { idp in
            let alice = try await idp.tokens(for: "alice")
            try await idp.approve(try await idp.interactionURI(alice.idToken), cookie: alice.cookie)
            let token = try #require(try await idp.sts(alice.idToken).json["access_token"] as? String)

            // The assertion must be for the revocation endpoint.
            let wrongAud = try await idp.post(idp.revokeEndpoint, form: [("token", token), ("token_type_hint", "oauth_sts")] + (try idp.assertion(for: idp.tokenEndpoint)))
            expectError(wrongAud, "invalid_client", status: 401)
            #expect(try await idp.sts(alice.idToken).status == 200, "a refused revocation changes nothing")

            let revoked = try await idp.post(idp.revokeEndpoint, form: [("token", token), ("token_type_hint", "oauth_sts")] + (try idp.assertion(for: idp.revokeEndpoint)))
            #expect(revoked.status == 200, "\(revoked.body)")
            expectError(try await idp.sts(alice.idToken), "interaction_required")

            // RFC 7009: revoking an unknown token is not an error.
            let unknown = try await idp.post(idp.revokeEndpoint, form: [("token", "whatever")] + (try idp.assertion(for: idp.revokeEndpoint)))
            #expect(unknown.status == 200)
        }
    }

    @Test func revokeNeedsClientAuthentication() async throws {
        try await withIdP { idp in
            let alice = try await idp.tokens(for: "alice")
            try await idp.approve(try await idp.interactionURI(alice.idToken), cookie: alice.cookie)
            let token = try #require(try await idp.sts(alice.idToken).json["access_token"] as? String)
            expectError(try await idp.post(idp.revokeEndpoint, form: [("token", token), ("token_type_hint", "oauth_sts")]), "invalid_client", status: 401)
            // A web client cannot revoke the agent's grant.
            let web = try await idp.post(idp.revokeEndpoint, form: [("token", token), ("client_id", "agent0"), ("client_secret", "agent0-dev-secret")])
            expectError(web, "unauthorized_client")
            #expect(try await idp.sts(alice.idToken).status == 200)
        }
    }

    @Test func unknownResourceIsInvalidTarget() async throws {
        try await withIdP { idp in
            let alice = try await idp.tokens(for: "alice")
            expectError(try await idp.sts(alice.idToken, resource: "orn:dev:idp:gitlab"), "invalid_target")
            // A resource of the MCP authorization server is not a third-party app.
            expectError(try await idp.sts(alice.idToken, resource: IdPHarness.todoResource), "invalid_target")
        }
    }

    @Test func missingResourceIsInvalidRequest() async throws {
        try await withIdP { idp in
            let alice = try await idp.tokens(for: "alice")
            expectError(try await idp.exchange(subjectToken: alice.idToken, requestedTokenType: IdPHarness.stsType, resource: nil, scope: nil), "invalid_request")
        }
    }

    @Test func unknownInteractionIs404() async throws {
        try await withIdP { idp in
            let alice = try await idp.signIn(as: "alice")
            #expect(try await idp.consentPage(idp.issuer + "/oauth2/v1/interaction/no-such-id", cookie: alice.cookie).status == 404)
            #expect(try await idp.decide(idp.issuer + "/oauth2/v1/interaction/no-such-id", cookie: alice.cookie, csrf: "x", decision: "approve").status == 404)
        }
    }
}
