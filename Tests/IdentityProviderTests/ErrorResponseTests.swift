import Foundation
import Testing

/// Error answers of every API endpoint are JSON, uncached and described, and no answer ever
/// carries a client secret or a password (every test also checks this for all the answers it
/// saw: `IdPHarness.checkEveryResponse`).
@Suite("Error responses")
struct ErrorResponseTests {
    @Test func everyAPIErrorIsJSONUncachedAndDescribed() async throws {
        try await withIdP { idp in
            let alice = try await idp.tokens(for: "alice")
            let basic = [("Authorization", "Basic " + Data("agent0:agent0-dev-secret".utf8).base64EncodedString())]
            let wrongBasic = [("Authorization", "Basic " + Data("agent0:alice-dev-password".utf8).base64EncodedString())]
            var answers: [IdPHarness.Answer] = []
            // Token endpoint.
            answers.append(try await idp.post(idp.tokenEndpoint, form: []))
            answers.append(try await idp.post(idp.tokenEndpoint, form: [("grant_type", "authorization_code")]))
            answers.append(try await idp.post(idp.tokenEndpoint, form: [("grant_type", "authorization_code"), ("code", "x")], headers: wrongBasic))
            answers.append(try await idp.post(idp.tokenEndpoint, form: [("grant_type", "authorization_code"), ("client_id", "agent0"), ("client_secret", "bob-dev-password")]))
            answers.append(try await idp.post(idp.tokenEndpoint, form: [("grant_type", "authorization_code")], headers: basic))
            answers.append(try await idp.post(idp.tokenEndpoint, form: [("grant_type", "password"), ("username", "alice"), ("password", "alice-dev-password")], headers: basic))
            answers.append(try await idp.post(idp.tokenEndpoint, form: [("grant_type", "authorization_code"), ("grant_type", "authorization_code")], headers: basic))
            answers.append(try await idp.post(idp.tokenEndpoint, form: [("grant_type", "authorization_code"), ("client_assertion_type", "bogus"), ("client_assertion", "x")]))
            answers.append(try await idp.post(idp.tokenEndpoint, form: [("grant_type", "authorization_code"), ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"), ("client_assertion", "not.a.jwt")]))
            answers.append(try await idp.exchange(subjectToken: alice.idToken, scope: "nope"))
            answers.append(try await idp.sts(alice.idToken))
            answers.append(try await idp.sts(alice.idToken, resource: "orn:nope"))
            answers.append(try await idp.exchange(subjectToken: "x.y.z"))
            answers.append(try await idp.post(idp.tokenEndpoint, body: #"{"grant_type":"authorization_code"}"#, contentType: "application/json"))
            // The authorization server's token endpoint.
            answers.append(try await idp.post(idp.asTokenEndpoint, form: []))
            answers.append(try await idp.jwtBearer("garbage"))
            answers.append(try await idp.jwtBearer(alice.idToken, auth: []))
            answers.append(try await idp.post(idp.issuer + "/oauth2/nope/v1/token", form: []))
            // Userinfo and revocation.
            answers.append(try await idp.get(idp.userinfoEndpoint, headers: [("Authorization", "Bearer x")]))
            answers.append(try await idp.get(idp.userinfoEndpoint, headers: [("Authorization", "Basic eDp5")]))
            answers.append(try await idp.post(idp.revokeEndpoint, form: [("token", "x")]))
            answers.append(try await idp.post(idp.revokeEndpoint, form: try idp.assertion(for: idp.revokeEndpoint)))
            answers.append(try await idp.get(idp.issuer + "/apps/nope/keys"))

            for a in answers {
                #expect(a.status >= 400, "\(a.status) \(a.body)")
                #expect(a.headers.first(name: "Content-Type")?.hasPrefix("application/json") == true, "\(a.body)")
                #expect(a.headers.first(name: "Cache-Control") == "no-store", "\(a.body)")
                #expect((a.json["error"] as? String)?.isEmpty == false, "\(a.body)")
                #expect((a.json["error_description"] as? String)?.isEmpty == false, "\(a.body)")
                for secret in IdPHarness.secrets { #expect(!a.body.contains(secret)) }
            }
        }
    }

    @Test func wrongMethodOrUnknownPathIsAJSONError() async throws {
        try await withIdP { idp in
            let answers = [
                ("GET token endpoint", try await idp.get(idp.tokenEndpoint)),
                ("GET AS token endpoint", try await idp.get(idp.asTokenEndpoint)),
                ("GET revocation endpoint", try await idp.get(idp.revokeEndpoint)),
                ("unknown OAuth path", try await idp.get(idp.issuer + "/oauth2/v1/no-such-endpoint")),
            ]
            for (what, a) in answers {
                #expect(a.status == 404 || a.status == 405, "\(what): \(a.status)")
                #expect(a.headers.first(name: "Content-Type")?.hasPrefix("application/json") == true, "\(what)")
                #expect(a.headers.first(name: "Cache-Control") == "no-store", "\(what)")
                #expect((a.json["error"] as? String)?.isEmpty == false, "\(what)")
                #expect((a.json["error_description"] as? String)?.isEmpty == false, "\(what)")
            }
        }
    }

    @Test func successfulTokenAnswersAreNotCached() async throws {
        try await withIdP { idp in
            let signIn = try await idp.signIn()
            let tokens = try await idp.redeem(code: signIn.code, verifier: signIn.pkce.verifier)
            #expect(tokens.headers.first(name: "Cache-Control") == "no-store")
            #expect(tokens.headers.first(name: "Content-Type")?.hasPrefix("application/json") == true)
            let idToken = try #require(tokens.json["id_token"] as? String)
            let exchange = try await idp.exchange(subjectToken: idToken)
            #expect(exchange.headers.first(name: "Cache-Control") == "no-store")
            let bearer = try await idp.jwtBearer(try #require(exchange.json["access_token"] as? String))
            #expect(bearer.headers.first(name: "Cache-Control") == "no-store")
        }
    }

    @Test func browserPagesNeverEchoPasswords() async throws {
        try await withIdP { idp in
            let params = idp.authorizeParameters(pkce: .make())
            // A wrong password that is another user's real one.
            let wrong = try await idp.submitLogin(params, username: "alice", password: "bob-dev-password")
            #expect(wrong.status == 401)
            #expect(!wrong.body.contains("bob-dev-password"))
            // A password smuggled into an authorization parameter is not reflected either.
            let smuggled = try await idp.get(idp.authorizeURL(params + [("password", "alice-dev-password")]))
            #expect(smuggled.status == 200)
            #expect(!smuggled.body.contains("alice-dev-password"))
        }
    }
}
