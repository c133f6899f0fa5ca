import AsyncHTTPClient
import Foundation
import OAuthCore
import SwitchboardTesting
import Testing

@Suite("JWT verification against a live JWKS")
struct JWTVerifierTests {
    static func withIssuer(_ body: (TestIssuer, JWKSKeySet) async throws -> Void) async throws {
        let issuer = try await TestIssuer.start()
        let keySet = JWKSKeySet(issuer: issuer.issuer, httpClient: .shared, cooldown: .seconds(30))
        do {
            try await body(issuer, keySet)
        } catch {
            await issuer.stop()
            throw error
        }
        await issuer.stop()
    }

    func verifier(_ issuer: TestIssuer, _ keys: JWKSKeySet) -> JWTVerifier {
        JWTVerifier(policy: .idToken(issuer: issuer.issuer, clientID: "agent0"), keySet: keys)
    }

    func rejection(_ v: JWTVerifier, _ token: String) async -> TokenValidationError.Code? {
        do {
            _ = try await v.verify(token)
            return nil
        } catch {
            return error.code
        }
    }

    @Test func acceptsValidRS256AndES256Tokens() async throws {
        try await Self.withIssuer { issuer, keys in
            let v = verifier(issuer, keys)
            let claims = try await v.verify(issuer.idToken(subject: "alice"))
            #expect(claims.subject == "alice")
            #expect(claims.uid == "uid-alice")
            let ec = try await v.verify(issuer.idToken(subject: "bob", key: .ec))
            #expect(ec.subject == "bob")
        }
    }

    @Test func rejectsForgedAndDowngradedTokens() async throws {
        try await Self.withIssuer { issuer, keys in
            let v = verifier(issuer, keys)
            #expect(await rejection(v, issuer.idToken(key: .none)) == .unsupportedAlgorithm)
            #expect(await rejection(v, issuer.idToken(key: .hs256("secret"))) == .unsupportedAlgorithm)
            #expect(await rejection(v, issuer.idToken(key: .foreignRSA)) == .badSignature)
            #expect(await rejection(v, "abc.def") == .malformed)
            #expect(await rejection(v, "not a token") == .malformed)
            // One spelling per token (issue 20's token matrix): a padded or non-alphabet segment,
            // and a header naming a member twice, are malformed before any key is looked up.
            let good = issuer.idToken()
            #expect(await rejection(v, good + "==") == .malformed)
            let parts = good.split(separator: ".").map(String.init)
            let twice = Base64URL.encode(Data(#"{"alg":"RS256","kid":"k","alg":"none"}"#.utf8))
            #expect(await rejection(v, [twice, parts[1], parts[2]].joined(separator: ".")) == .malformed)
            let claimsTwice = Base64URL.encode(Data(#"{"sub":"a","sub":"b"}"#.utf8))
            #expect(await rejection(v, [parts[0], claimsTwice, parts[2]].joined(separator: ".")) == .malformed)
            #expect(Base64URL.decode("YQ") == Data("a".utf8) && Base64URL.decode("YR") == nil && Base64URL.decode("YQ==") == nil)
            // Standard base64's '+' and '/' are other spellings of base64url's '-' and '_': refused.
            #expect(Base64URL.decode("-_8") == Data([0xFB, 0xFF]) && Base64URL.decode("+/8") == nil)
            // An RSA-signed token claiming ES256 under the EC kid must not verify.
            #expect(await rejection(v, issuer.idToken(header: ["alg": "ES256"], key: .rsa)) != nil)
        }
    }

    @Test func checksIssuerAudienceLifetimeAndType() async throws {
        try await Self.withIssuer { issuer, keys in
            let v = verifier(issuer, keys)
            #expect(await rejection(v, issuer.idToken(audience: "someone-else")) == .wrongAudience)
            // OIDC Core §3.1.3.7: an audience not trusted here next to ours, or an azp that is not us.
            #expect(await rejection(v, issuer.idToken(extra: ["aud": ["agent0", "someone-else"]])) == .wrongAudience)
            #expect(await rejection(v, issuer.idToken(extra: ["aud": ["agent0", "someone-else"], "azp": "agent0"])) == .wrongAudience)
            #expect(await rejection(v, issuer.idToken(extra: ["azp": "someone-else"])) == .wrongAudience)
            _ = try await v.verify(issuer.idToken(extra: ["aud": ["agent0"]]))
            _ = try await v.verify(issuer.idToken(extra: ["azp": "agent0"]))
            #expect(await rejection(v, issuer.idToken(extra: ["iss": "http://evil.example"])) == .wrongIssuer)
            #expect(await rejection(v, issuer.idToken(lifetime: 600, issuedAt: Date().addingTimeInterval(-3600))) == .expired)
            #expect(await rejection(v, issuer.idToken(issuedAt: Date().addingTimeInterval(600))) == .issuedInFuture)
            #expect(await rejection(v, issuer.idToken(extra: ["nbf": Int(Date().timeIntervalSince1970) + 600])) == .notYetValid)
            #expect(await rejection(v, issuer.idToken(lifetime: 7 * 86_400)) == .lifetimeTooLong)
            #expect(await rejection(v, issuer.idToken(header: ["typ": "at+jwt"])) == .wrongType)
            #expect(await rejection(v, issuer.idToken(header: ["typ": "oauth-id-jag+jwt"])) == .wrongType)
            // Within the 60 s skew: accepted.
            _ = try await v.verify(issuer.idToken(lifetime: 600, issuedAt: Date().addingTimeInterval(-630)))
            // A token without typ is a plain OIDC ID token: accepted.
            _ = try await v.verify(issuer.idToken(header: ["typ": NSNull()]))
        }
    }

    @Test func unknownKidRefetchesAtMostOncePerCooldown() async throws {
        try await Self.withIssuer { issuer, keys in
            let v = verifier(issuer, keys)
            _ = try await v.verify(issuer.idToken())
            #expect(issuer.jwksFetches == 1)
            for i in 0..<20 {
                #expect(await rejection(v, issuer.idToken(header: ["kid": "random-\(i)"])) == .unknownKey)
            }
            // The first miss may not refetch (just fetched); none of the 20 may cause more than one fetch.
            #expect(issuer.jwksFetches <= 2)
        }
    }

    @Test func rotatedKeyIsPickedUpAfterCooldown() async throws {
        let issuer = try await TestIssuer.start()
        defer { Task { await issuer.stop() } }
        let keys = JWKSKeySet(issuer: issuer.issuer, httpClient: .shared, cooldown: .milliseconds(200))
        let v = JWTVerifier(policy: .idToken(issuer: issuer.issuer, clientID: "agent0"), keySet: keys)
        _ = try await v.verify(issuer.idToken())
        issuer.publish(kid: "rotated-2")
        try await Task.sleep(for: .milliseconds(250))
        let claims = try await v.verify(issuer.idToken(subject: "rotated", header: ["kid": "rotated-2"]))
        #expect(claims.subject == "rotated")
        #expect(issuer.jwksFetches == 2)
    }
}
