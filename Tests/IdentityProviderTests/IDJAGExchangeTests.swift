import Foundation
import OAuthCore
import SwitchboardTesting
import Testing

/// RFC 8693 token exchange at the org token endpoint: the user's ID token → an ID-JAG for the
/// todo-mcp authorization server, with private_key_jwt client authentication (PROTOCOLS.md A, B).
@Suite("ID token → ID-JAG token exchange")
struct IDJAGExchangeTests {
    @Test func exchangeIssuesAnIDJAG() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens(for: "alice")
            let answer = try await idp.exchange(subjectToken: user.idToken)
            #expect(answer.status == 200, "\(answer.body)")
            #expect(answer.json["issued_token_type"] as? String == IdPHarness.idJAGType)
            #expect(answer.json["token_type"] as? String == "N_A")
            #expect((answer.json["expires_in"] as? NSNumber)?.intValue == 300)
            #expect(answer.json["scope"] as? String == "mcp:connect mcp:tools:read")
            let jag = try #require(answer.json["access_token"] as? String)

            let jwt = try DecodedJWT(jag)
            #expect(jwt.header["typ"] as? String == "oauth-id-jag+jwt")
            #expect(jwt.header["alg"] as? String == "RS256")
            let orgKids = try await idp.kids(at: idp.issuer + "/oauth2/v1/keys")
            #expect(orgKids.contains(jwt.header["kid"] as? String ?? "-"))
            #expect(jwt.claims["iss"] as? String == idp.issuer)
            #expect(jwt.claims["sub"] as? String == "00u-alice")
            #expect(jwt.claims["aud"] as? String == idp.todoAS, "aud must be the AS issuer as one string, not a list")
            #expect(jwt.claims["client_id"] as? String == IdPHarness.agentID)
            #expect((jwt.claims["jti"] as? String)?.isEmpty == false)
            #expect(jwt.claims["resource"] as? String == IdPHarness.todoResource)
            #expect(jwt.claims["scope"] as? String == "mcp:connect mcp:tools:read")
            let now = Int(Date().timeIntervalSince1970)
            let exp = try #require(jwt.int("exp"))
            let iat = try #require(jwt.int("iat"))
            #expect(abs(exp - (now + 300)) <= 10)
            #expect(abs(iat - now) <= 10)

            // Signed by the org, verifiable as an ID-JAG (and only as one).
            let keys = JWKSKeySet(issuer: idp.issuer, httpClient: TestHTTP.client)
            let policy = TokenPolicy(issuer: idp.issuer, audiences: [idp.todoAS], types: ["oauth-id-jag+jwt"], maxLifetime: .seconds(600))
            let claims = try await JWTVerifier(policy: policy, keySet: keys).verify(jag)
            #expect(claims.clientID == IdPHarness.agentID)
            await #expect(throws: TokenValidationError.self) {
                _ = try await JWTVerifier(policy: .idToken(issuer: idp.issuer, clientID: idp.todoAS), keySet: keys).verify(jag)
            }

            // Each exchange issues a fresh jti.
            let second = try DecodedJWT(try await idp.idJAG(for: user.idToken))
            #expect(second.claims["jti"] as? String != jwt.claims["jti"] as? String)
        }
    }

    @Test func exchangeWithoutResourceAndScopeOmitsThem() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let answer = try await idp.exchange(subjectToken: user.idToken, resource: nil, scope: nil)
            #expect(answer.status == 200, "\(answer.body)")
            #expect(answer.json["scope"] == nil)
            let jwt = try DecodedJWT(try #require(answer.json["access_token"] as? String))
            #expect(jwt.claims["resource"] == nil)
            #expect(jwt.claims["scope"] == nil)
        }
    }

    // MARK: client authentication (private_key_jwt)

    @Test func noClientAuthenticationIsInvalidClient() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let answer = try await idp.exchange(subjectToken: user.idToken, auth: [])
            expectError(answer, "invalid_client", status: 401)
        }
    }

    @Test func assertionForAnotherAudienceIsInvalidClient() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            expectError(try await idp.exchange(subjectToken: user.idToken, auth: try idp.assertion(for: idp.issuer)), "invalid_client", status: 401)
            expectError(try await idp.exchange(subjectToken: user.idToken, auth: try idp.assertion(for: idp.asTokenEndpoint)), "invalid_client", status: 401)
        }
    }

    @Test func reusedAssertionIsInvalidClient() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let auth = try idp.assertion(for: idp.tokenEndpoint)
            let first = try await idp.exchange(subjectToken: user.idToken, auth: auth)
            #expect(first.status == 200, "\(first.body)")
            expectError(try await idp.exchange(subjectToken: user.idToken, auth: auth), "invalid_client", status: 401)
        }
    }

    @Test func expiredAssertionIsInvalidClient() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let past = Int(Date().timeIntervalSince1970) - 600
            let auth = try idp.customAssertion(endpoint: idp.tokenEndpoint, issuedAt: past, lifetime: 300)
            expectError(try await idp.exchange(subjectToken: user.idToken, auth: auth), "invalid_client", status: 401)
        }
    }

    @Test func assertionExpiringMoreThanAnHourAheadIsInvalidClient() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let now = Int(Date().timeIntervalSince1970)
            let long = try idp.customAssertion(endpoint: idp.tokenEndpoint, issuedAt: now, lifetime: 2 * 3600)
            expectError(try await idp.exchange(subjectToken: user.idToken, auth: long), "invalid_client", status: 401)
            // Without iat the distance from now is what counts.
            let noIAT = try idp.customAssertion(endpoint: idp.tokenEndpoint, issuedAt: nil, lifetime: 2 * 3600)
            expectError(try await idp.exchange(subjectToken: user.idToken, auth: noIAT), "invalid_client", status: 401)
        }
    }

    @Test func assertionSignedByAnUnregisteredKeyIsInvalidClient() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            // A key the IdP never saw, under a kid it does not know…
            let rogue = try SigningKey.generateRSA(kid: "rogue-key")
            expectError(try await idp.exchange(subjectToken: user.idToken, auth: try idp.customAssertion(endpoint: idp.tokenEndpoint, key: rogue)),
                        "invalid_client", status: 401)
            // …and under the registered kid (signature does not verify).
            let impostor = try SigningKey.generateRSA(kid: idp.agentKey.kid)
            expectError(try await idp.exchange(subjectToken: user.idToken, auth: try idp.customAssertion(endpoint: idp.tokenEndpoint, key: impostor)),
                        "invalid_client", status: 401)
            let ec = SigningKey.generateEC(kid: idp.agentKey.kid)
            expectError(try await idp.exchange(subjectToken: user.idToken, auth: try idp.customAssertion(endpoint: idp.tokenEndpoint, key: ec)),
                        "invalid_client", status: 401)
        }
    }

    @Test func assertionWithoutJTIOrExpIsInvalidClient() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let now = Int(Date().timeIntervalSince1970)
            let base: [String: any Sendable] = ["iss": IdPHarness.agentID, "sub": IdPHarness.agentID, "aud": idp.tokenEndpoint, "iat": now,
                                                "exp": now + 120, "jti": UUID().uuidString]
            for missing in ["jti", "exp", "iss", "sub"] {
                var claims = base
                claims[missing] = nil
                let auth = [("client_assertion_type", ClientAssertion.type), ("client_assertion", try idp.agentKey.sign(claims: claims, type: "JWT"))]
                let answer = try await idp.exchange(subjectToken: user.idToken, auth: auth)
                #expect(answer.status == 401, "without \(missing): \(answer.body)")
                #expect(answer.json["error"] as? String == "invalid_client", "without \(missing)")
            }
        }
    }

    @Test func assertionWithoutSignatureOrWithHMACIsInvalidClient() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let signed = try #require(try idp.assertion(for: idp.tokenEndpoint).last?.1)
            let parts = signed.split(separator: ".").map(String.init)
            for alg in ["none", "HS256"] {
                let header = Base64URL.encode(Data(#"{"alg":"\#(alg)","kid":"test-agent-key","typ":"JWT"}"#.utf8))
                let forged = header + "." + parts[1] + "." + (alg == "none" ? "" : parts[2])
                let answer = try await idp.exchange(subjectToken: user.idToken, auth: [("client_assertion_type", ClientAssertion.type), ("client_assertion", forged)])
                expectError(answer, "invalid_client", status: 401)
            }
        }
    }

    @Test func assertionWhoseSubDiffersFromIssIsInvalidClient() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let auth = try idp.customAssertion(endpoint: idp.tokenEndpoint, subject: "00u-alice")
            expectError(try await idp.exchange(subjectToken: user.idToken, auth: auth), "invalid_client", status: 401)
        }
    }

    @Test func assertionForAnUnknownClientIsInvalidClient() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let auth = try idp.customAssertion(endpoint: idp.tokenEndpoint, issuer: "other-agent", subject: "other-agent")
            expectError(try await idp.exchange(subjectToken: user.idToken, auth: auth), "invalid_client", status: 401)
            // client_id contradicting the assertion's iss.
            let mismatched = try idp.assertion(for: idp.tokenEndpoint) + [("client_id", "agent0")]
            expectError(try await idp.exchange(subjectToken: user.idToken, auth: mismatched), "invalid_client", status: 401)
        }
    }

    @Test func webClientCannotUseTokenExchange() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let answer = try await idp.exchange(subjectToken: user.idToken, auth: [("client_id", "agent0"), ("client_secret", "agent0-dev-secret")])
            expectError(answer, "unauthorized_client")
        }
    }

    // MARK: the subject token

    @Test func subjectTokenForAnotherAudienceIsInvalidGrant() async throws {
        try await withIdP { idp in
            let org = try idp.storedSigningKey(owner: "org")
            let now = Int(Date().timeIntervalSince1970)
            let token = try org.sign(claims: ["iss": idp.issuer, "sub": "00u-alice", "aud": "some-other-client", "iat": now, "exp": now + 600], type: "JWT")
            expectError(try await idp.exchange(subjectToken: token), "invalid_grant")
        }
    }

    @Test func expiredSubjectTokenIsInvalidGrant() async throws {
        try await withIdP { idp in
            let org = try idp.storedSigningKey(owner: "org")
            let then = Int(Date().timeIntervalSince1970) - 7200
            let token = try org.sign(claims: ["iss": idp.issuer, "sub": "00u-alice", "aud": "agent0", "iat": then, "exp": then + 3600], type: "JWT")
            expectError(try await idp.exchange(subjectToken: token), "invalid_grant")
        }
    }

    @Test func forgedSubjectTokenIsInvalidGrant() async throws {
        try await withIdP { idp in
            let genuine = try await idp.tokens(for: "bob").idToken
            let decoded = try DecodedJWT(genuine)
            let orgKid = try #require(decoded.header["kid"] as? String)
            // Same claims but alice's identity, signed by a key that only claims the org's kid.
            let claims: [String: any Sendable] = [
                "iss": idp.issuer, "sub": "00u-alice", "aud": "agent0", "iat": decoded.int("iat") ?? 0, "exp": decoded.int("exp") ?? 0,
                "email": "alice@example.test", "uid": "00u-alice",
            ]
            let forged = try SigningKey.generateRSA(kid: orgKid).sign(claims: claims, type: "JWT")
            expectError(try await idp.exchange(subjectToken: forged), "invalid_grant")
            // The genuine token with a tampered payload.
            let parts = genuine.split(separator: ".").map(String.init)
            var payload = decoded.claims
            payload["sub"] = "00u-alice"
            let tampered = parts[0] + "." + Base64URL.encode(try JSONSerialization.data(withJSONObject: payload)) + "." + parts[2]
            expectError(try await idp.exchange(subjectToken: tampered), "invalid_grant")
            // Unsigned.
            let none = Base64URL.encode(Data(#"{"alg":"none","kid":"\#(orgKid)","typ":"JWT"}"#.utf8)) + "." + parts[1] + "."
            expectError(try await idp.exchange(subjectToken: none), "invalid_grant")
            expectError(try await idp.exchange(subjectToken: "garbage"), "invalid_grant")
        }
    }

    @Test func otherOrgTokensAreNotSubjectTokens() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            // The org access token (typ at+jwt) and an ID-JAG (typ oauth-id-jag+jwt) are not ID tokens.
            expectError(try await idp.exchange(subjectToken: user.accessToken), "invalid_grant")
            expectError(try await idp.exchange(subjectToken: try await idp.idJAG(for: user.idToken)), "invalid_grant")
        }
    }

    @Test func wrongSubjectTokenTypeIsInvalidRequest() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let form = [("grant_type", IdPHarness.tokenExchangeGrant), ("requested_token_type", IdPHarness.idJAGType), ("subject_token", user.idToken),
                        ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"), ("audience", idp.todoAS)]
            expectError(try await idp.post(idp.tokenEndpoint, form: form + (try idp.assertion(for: idp.tokenEndpoint))), "invalid_request")
        }
    }

    // MARK: what is asked for

    @Test func unknownAudienceIsInvalidTarget() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            expectError(try await idp.exchange(subjectToken: user.idToken, audience: idp.issuer + "/oauth2/no-such-as"), "invalid_target")
        }
    }

    @Test func missingAudienceIsInvalidRequest() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let form = [("grant_type", IdPHarness.tokenExchangeGrant), ("requested_token_type", IdPHarness.idJAGType), ("subject_token", user.idToken),
                        ("subject_token_type", IdPHarness.idTokenType)]
            expectError(try await idp.post(idp.tokenEndpoint, form: form + (try idp.assertion(for: idp.tokenEndpoint))), "invalid_request")
        }
    }

    @Test func unregisteredResourceIsInvalidTarget() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            expectError(try await idp.exchange(subjectToken: user.idToken, resource: "http://127.0.0.1:5999/mcp"), "invalid_target")
        }
    }

    @Test func unknownScopeIsInvalidScope() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            expectError(try await idp.exchange(subjectToken: user.idToken, scope: "mcp:connect mcp:admin"), "invalid_scope")
        }
    }

    @Test func unknownRequestedTokenTypeIsInvalidRequest() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            expectError(try await idp.exchange(subjectToken: user.idToken, requestedTokenType: "urn:ietf:params:oauth:token-type:saml2"), "invalid_request")
        }
    }

    @Test func unsupportedGrantTypeIsRefused() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            expectError(try await idp.exchange(subjectToken: user.idToken, grantType: "client_credentials"), "unsupported_grant_type")
            expectError(try await idp.exchange(subjectToken: user.idToken, grantType: IdPHarness.jwtBearerGrant), "unsupported_grant_type")
        }
    }

    @Test func repeatedParameterIsInvalidRequest() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let form = [("grant_type", IdPHarness.tokenExchangeGrant), ("requested_token_type", IdPHarness.idJAGType), ("subject_token", user.idToken),
                        ("subject_token_type", IdPHarness.idTokenType), ("audience", idp.todoAS), ("audience", idp.issuer + "/oauth2/other")]
            expectError(try await idp.post(idp.tokenEndpoint, form: form + (try idp.assertion(for: idp.tokenEndpoint))), "invalid_request")
        }
    }
}
