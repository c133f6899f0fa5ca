import Foundation
import OAuthCore
import SwitchboardTesting
import Testing

/// RFC 7523 jwt-bearer grant at the todo-mcp authorization server: ID-JAG → access token
/// (PROTOCOLS.md C), with the client assertion aimed at that AS's own token endpoint.
@Suite("ID-JAG → access token (jwt-bearer grant)")
struct JWTBearerGrantTests {
    @Test func idJAGBuysAnAccessTokenForTheResource() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens(for: "alice")
            let jag = try await idp.idJAG(for: user.idToken)
            let answer = try await idp.jwtBearer(jag)
            #expect(answer.status == 200, "\(answer.body)")
            #expect(answer.json["token_type"] as? String == "Bearer")
            #expect((answer.json["expires_in"] as? NSNumber)?.intValue == 3600)
            #expect(answer.json["scope"] as? String == "mcp:connect mcp:tools:read")
            #expect(answer.json["refresh_token"] == nil)
            let token = try #require(answer.json["access_token"] as? String)

            let jwt = try DecodedJWT(token)
            #expect(jwt.header["typ"] as? String == "at+jwt")
            #expect(jwt.header["alg"] as? String == "RS256")
            #expect(jwt.claims["aud"] as? String == IdPHarness.todoResource)
            #expect(jwt.claims["iss"] as? String == idp.todoAS)
            #expect(jwt.claims["sub"] as? String == "00u-alice")
            #expect(jwt.claims["uid"] as? String == "00u-alice")
            #expect(jwt.claims["scp"] as? [String] == ["mcp:connect", "mcp:tools:read"])
            #expect(jwt.claims["client_id"] as? String == IdPHarness.agentID)
            #expect((jwt.claims["act"] as? [String: Any])?["sub"] as? String == IdPHarness.agentID)
            #expect((jwt.claims["jti"] as? String)?.isEmpty == false)
            let now = Int(Date().timeIntervalSince1970)
            #expect(abs((jwt.int("exp") ?? 0) - (now + 3600)) <= 10)
            #expect(abs((jwt.int("iat") ?? 0) - now) <= 10)

            // The AS metadata, then its keys found by discovery at the AS issuer.
            let metadata = try await idp.get(idp.todoAS + "/.well-known/oauth-authorization-server")
            #expect(metadata.status == 200)
            #expect(metadata.json["issuer"] as? String == idp.todoAS)
            #expect(metadata.json["token_endpoint"] as? String == idp.asTokenEndpoint)
            #expect(metadata.json["jwks_uri"] as? String == idp.todoAS + "/v1/keys")
            #expect(metadata.json["grant_types_supported"] as? [String] == [IdPHarness.jwtBearerGrant])
            #expect(metadata.json["response_types_supported"] is [Any], "RFC 8414 requires the member")
            // RFC 8414 §3.1: the same document with the well-known segment inserted before the issuer's path.
            let inserted = try await idp.get(idp.issuer + "/.well-known/oauth-authorization-server/oauth2/todo-mcp")
            #expect(inserted.status == 200)
            #expect(inserted.json["issuer"] as? String == idp.todoAS)
            #expect(inserted.json["jwks_uri"] as? String == idp.todoAS + "/v1/keys")
            let asKids = try await idp.kids(at: idp.todoAS + "/v1/keys")
            #expect(asKids.contains(jwt.header["kid"] as? String ?? "-"))
            #expect(!(try await idp.kids(at: idp.issuer + "/oauth2/v1/keys")).contains(jwt.header["kid"] as? String ?? "-"),
                    "the AS signs with its own key, not the org's")

            let keys = JWKSKeySet(issuer: idp.todoAS, httpClient: TestHTTP.client)
            let claims = try await JWTVerifier(policy: .accessToken(issuer: idp.todoAS, resource: IdPHarness.todoResource), keySet: keys).verify(token)
            #expect(claims.scopes == ["mcp:connect", "mcp:tools:read"])
            #expect(claims.actorSubject == IdPHarness.agentID)
            #expect(claims.clientID == IdPHarness.agentID)
            #expect(claims.subject == "00u-alice")
            // Not acceptable as an org token: userinfo refuses it.
            expectError(try await idp.get(idp.userinfoEndpoint, headers: [("Authorization", "Bearer " + token)]), "invalid_token", status: 401)
        }
    }

    @Test func defaultScopesAreGrantedWithoutAsking() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let answer = try await idp.jwtBearer(try await idp.idJAG(for: user.idToken, scope: nil))
            #expect(answer.status == 200, "\(answer.body)")
            #expect(answer.json["scope"] as? String == "mcp:connect mcp:tools:read")
            let jwt = try DecodedJWT(try #require(answer.json["access_token"] as? String))
            #expect(jwt.claims["scp"] as? [String] == ["mcp:connect", "mcp:tools:read"])
        }
    }

    @Test func onRequestScopeIsGrantedWhenAskedForInTheIDJAG() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let jag = try await idp.idJAG(for: user.idToken, scope: "mcp:connect mcp:tools:read mcp:tools:manage")
            let answer = try await idp.jwtBearer(jag)
            #expect(answer.status == 200, "\(answer.body)")
            #expect(answer.json["scope"] as? String == "mcp:connect mcp:tools:read mcp:tools:manage")
            let jwt = try DecodedJWT(try #require(answer.json["access_token"] as? String))
            #expect(jwt.claims["scp"] as? [String] == ["mcp:connect", "mcp:tools:read", "mcp:tools:manage"])
        }
    }

    @Test func onRequestScopeIsGrantedWhenAskedForAtTheGrant() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let jag = try await idp.idJAG(for: user.idToken, scope: "mcp:connect mcp:tools:read mcp:tools:manage")
            let answer = try await idp.jwtBearer(jag, scope: "mcp:connect mcp:tools:read mcp:tools:manage")
            #expect(answer.status == 200, "\(answer.body)")
            let jwt = try DecodedJWT(try #require(answer.json["access_token"] as? String))
            #expect(jwt.claims["scp"] as? [String] == ["mcp:connect", "mcp:tools:read", "mcp:tools:manage"])
        }
    }

    @Test func replayedIDJAGIsInvalidGrant() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let jag = try await idp.idJAG(for: user.idToken)
            let first = try await idp.jwtBearer(jag)
            #expect(first.status == 200, "\(first.body)")
            expectError(try await idp.jwtBearer(jag), "invalid_grant")
        }
    }

    @Test func idTokenIsNotAnIDJAG() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            expectError(try await idp.jwtBearer(user.idToken), "invalid_grant")
        }
    }

    @Test func orgAccessTokenIsNotAnIDJAG() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            expectError(try await idp.jwtBearer(user.accessToken), "invalid_grant")
        }
    }

    @Test func idJAGForAnotherAudienceIsInvalidGrant() async throws {
        try await withIdP { idp in
            // Genuinely signed by the org (the key from the IdP's own store), but for another AS.
            let org = try idp.storedSigningKey(owner: "org")
            let jag = try org.sign(claims: Self.jagClaims(idp, audience: idp.issuer + "/oauth2/other-mcp"), type: "oauth-id-jag+jwt")
            expectError(try await idp.jwtBearer(jag), "invalid_grant")
            // The same claims but the right audience pass: the audience was the only fault.
            let good = try org.sign(claims: Self.jagClaims(idp, audience: idp.todoAS), type: "oauth-id-jag+jwt")
            #expect(try await idp.jwtBearer(good).status == 200)
        }
    }

    @Test func unsignedOrHMACIDJAGIsInvalidGrant() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let genuine = try await idp.idJAG(for: user.idToken)
            let parts = genuine.split(separator: ".").map(String.init)
            let kid = try #require(try DecodedJWT(genuine).header["kid"] as? String)
            for alg in ["none", "HS256"] {
                let header = Base64URL.encode(Data(#"{"alg":"\#(alg)","kid":"\#(kid)","typ":"oauth-id-jag+jwt"}"#.utf8))
                expectError(try await idp.jwtBearer(header + "." + parts[1] + "." + (alg == "none" ? "" : parts[2])), "invalid_grant")
            }
            // A wrong typ on otherwise genuine content is refused too (the signature no longer matches either).
            let jwtTyp = Base64URL.encode(Data(#"{"alg":"RS256","kid":"\#(kid)","typ":"JWT"}"#.utf8))
            expectError(try await idp.jwtBearer(jwtTyp + "." + parts[1] + "." + parts[2]), "invalid_grant")
            // The genuine one was never consumed by these attempts.
            #expect(try await idp.jwtBearer(genuine).status == 200)
        }
    }

    @Test func idJAGWithSeveralAudiencesIsInvalidGrant() async throws {
        try await withIdP { idp in
            let org = try idp.storedSigningKey(owner: "org")
            var claims = Self.jagClaims(idp, audience: idp.todoAS)
            claims["aud"] = [idp.todoAS, idp.issuer + "/oauth2/other-mcp"]
            expectError(try await idp.jwtBearer(try org.sign(claims: claims, type: "oauth-id-jag+jwt")), "invalid_grant")
        }
    }

    @Test func idJAGSignedByAnUnknownKeyIsInvalidGrant() async throws {
        try await withIdP { idp in
            let rogue = try SigningKey.generateRSA(kid: "not-an-org-key")
            expectError(try await idp.jwtBearer(try rogue.sign(claims: Self.jagClaims(idp, audience: idp.todoAS), type: "oauth-id-jag+jwt")), "invalid_grant")
            // Claiming the org's kid does not help.
            let orgKid = try #require(try await idp.kids(at: idp.issuer + "/oauth2/v1/keys").first)
            let impostor = try SigningKey.generateRSA(kid: orgKid)
            expectError(try await idp.jwtBearer(try impostor.sign(claims: Self.jagClaims(idp, audience: idp.todoAS), type: "oauth-id-jag+jwt")), "invalid_grant")
            // Nor does a key of the AS itself: ID-JAGs come from the org.
            let asKey = try idp.storedSigningKey(owner: "as:todo-mcp")
            expectError(try await idp.jwtBearer(try asKey.sign(claims: Self.jagClaims(idp, audience: idp.todoAS), type: "oauth-id-jag+jwt")), "invalid_grant")
        }
    }

    @Test func idJAGIssuedToAnotherClientIsInvalidGrant() async throws {
        try await withIdP { idp in
            let org = try idp.storedSigningKey(owner: "org")
            var claims = Self.jagClaims(idp, audience: idp.todoAS)
            claims["client_id"] = "some-other-agent"
            expectError(try await idp.jwtBearer(try org.sign(claims: claims, type: "oauth-id-jag+jwt")), "invalid_grant")
            claims["client_id"] = nil
            expectError(try await idp.jwtBearer(try org.sign(claims: claims, type: "oauth-id-jag+jwt")), "invalid_grant")
        }
    }

    @Test func idJAGForAnUnregisteredResourceIsInvalidTarget() async throws {
        try await withIdP { idp in
            let org = try idp.storedSigningKey(owner: "org")
            var claims = Self.jagClaims(idp, audience: idp.todoAS)
            claims["resource"] = "http://127.0.0.1:5999/mcp"
            expectError(try await idp.jwtBearer(try org.sign(claims: claims, type: "oauth-id-jag+jwt")), "invalid_target")
        }
    }

    @Test func expiredOrLongLivedIDJAGIsInvalidGrant() async throws {
        try await withIdP { idp in
            let org = try idp.storedSigningKey(owner: "org")
            let now = Int(Date().timeIntervalSince1970)
            var expired = Self.jagClaims(idp, audience: idp.todoAS)
            expired["iat"] = now - 900
            expired["exp"] = now - 600
            expectError(try await idp.jwtBearer(try org.sign(claims: expired, type: "oauth-id-jag+jwt")), "invalid_grant")
            var long = Self.jagClaims(idp, audience: idp.todoAS)
            long["exp"] = now + 86_400
            expectError(try await idp.jwtBearer(try org.sign(claims: long, type: "oauth-id-jag+jwt")), "invalid_grant")
            var future = Self.jagClaims(idp, audience: idp.todoAS)
            future["iat"] = now + 600
            future["exp"] = now + 900
            expectError(try await idp.jwtBearer(try org.sign(claims: future, type: "oauth-id-jag+jwt")), "invalid_grant")
        }
    }

    @Test func clientAssertionForTheOrgEndpointIsInvalidClient() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let jag = try await idp.idJAG(for: user.idToken)
            expectError(try await idp.jwtBearer(jag, auth: try idp.assertion(for: idp.tokenEndpoint)), "invalid_client", status: 401)
            // The ID-JAG was not consumed by the refused request.
            #expect(try await idp.jwtBearer(jag).status == 200)
        }
    }

    @Test func webClientCannotUseTheJWTBearerGrant() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let jag = try await idp.idJAG(for: user.idToken)
            expectError(try await idp.jwtBearer(jag, auth: [("client_id", "agent0"), ("client_secret", "agent0-dev-secret")]), "unauthorized_client")
            expectError(try await idp.jwtBearer(jag, auth: []), "invalid_client", status: 401)
        }
    }

    @Test func unknownScopeIsInvalidScope() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let jag = try await idp.idJAG(for: user.idToken)
            expectError(try await idp.jwtBearer(jag, scope: "mcp:connect mcp:admin"), "invalid_scope")
        }
    }

    @Test func otherGrantTypesAreUnsupportedAtTheAS() async throws {
        try await withIdP { idp in
            let form = [("grant_type", "client_credentials")] + (try idp.assertion(for: idp.asTokenEndpoint))
            expectError(try await idp.post(idp.asTokenEndpoint, form: form), "unsupported_grant_type")
        }
    }

    @Test func unknownAuthorizationServerIs404() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let jag = try await idp.idJAG(for: user.idToken)
            let endpoint = idp.issuer + "/oauth2/no-such-as/v1/token"
            let answer = try await idp.jwtBearer(jag, endpoint: endpoint)
            #expect(answer.status == 404, "\(answer.body)")
            #expect(try await idp.get(idp.issuer + "/oauth2/no-such-as/.well-known/oauth-authorization-server").status == 404)
            #expect(try await idp.get(idp.issuer + "/oauth2/no-such-as/v1/keys").status == 404)
        }
    }

    /// The claims of a well-formed ID-JAG for alice and the agent.
    static func jagClaims(_ idp: IdPHarness, audience: String) -> [String: any Sendable] {
        let now = Int(Date().timeIntervalSince1970)
        return [
            "iss": idp.issuer, "sub": "00u-alice", "aud": audience, "client_id": IdPHarness.agentID, "jti": UUID().uuidString,
            "iat": now, "exp": now + 300, "resource": IdPHarness.todoResource, "scope": "mcp:connect mcp:tools:read", "uid": "00u-alice",
        ]
    }
}

@Suite("JWT-bearer grant: scope cannot be widened past the ID-JAG")
struct JWTBearerScopeWideningTests {
    @Test func tokenRequestCannotAskForMoreThanTheIDJAGAuthorized() async throws {
        try await withIdP { idp in
            let signIn = try await idp.signIn()
            let tokens = try await idp.redeem(code: signIn.code, verifier: signIn.pkce.verifier)
            let idToken = try #require(tokens.json["id_token"] as? String)
            let exchange = try await idp.post(idp.tokenEndpoint, form: [
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                ("requested_token_type", "urn:ietf:params:oauth:token-type:id-jag"),
                ("subject_token", idToken), ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"),
                ("audience", idp.todoAS), ("scope", "mcp:connect mcp:tools:read"),
            ] + idp.assertion(for: idp.tokenEndpoint))
            let jag = try #require(exchange.json["access_token"] as? String)
            let widened = try await idp.post(idp.asTokenEndpoint, form: [
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", jag),
                ("scope", "mcp:connect mcp:tools:read mcp:tools:manage"),
            ] + idp.assertion(for: idp.asTokenEndpoint))
            #expect(widened.status == 400)
            #expect(widened.json["error"] as? String == "invalid_scope")
        }
    }
}
