import Foundation
@testable import IdentityProvider
import OAuthCore
import Testing

/// The IdP's state survives a restart on the same data directory (and the same port, so the
/// issuer is the same).
@Suite("Persistence across restarts")
struct PersistenceTests {
    @Test(.timeLimit(.minutes(2)))
    func keysConsentsAndTokensSurviveARestart() async throws {
        let first = try await IdPHarness.start()
        let orgKids: [String]
        let asKids: [String]
        let appKids: [String]
        let alice: IdPHarness.UserTokens
        do {
            orgKids = try await first.kids(at: first.issuer + "/oauth2/v1/keys")
            asKids = try await first.kids(at: first.todoAS + "/v1/keys")
            appKids = try await first.kids(at: first.githubIssuer + "/keys")
            alice = try await first.tokens(for: "alice")
            try await first.approve(try await first.interactionURI(alice.idToken), cookie: alice.cookie)
            #expect(try await first.sts(alice.idToken).status == 200)
        } catch {
            first.checkEveryResponse(sourceLocation: #_sourceLocation)
            await first.stop()
            throw error
        }
        first.checkEveryResponse(sourceLocation: #_sourceLocation)
        await first.stop(keepData: true)

        let second = try await IdPHarness.start(dataDirectory: first.dataDirectory, port: first.server.port)
        do {
            #expect(second.issuer == first.issuer)
            #expect(try await second.kids(at: second.issuer + "/oauth2/v1/keys") == orgKids)
            #expect(try await second.kids(at: second.todoAS + "/v1/keys") == asKids)
            #expect(try await second.kids(at: second.githubIssuer + "/keys") == appKids)

            // The ID token issued before the restart still verifies (JWKS by discovery)…
            let claims = try await second.verifyIDToken(alice.idToken)
            #expect(claims.subject == "00u-alice")
            // …and the IdP itself still accepts it as a subject token.
            let jag = try await second.idJAG(for: alice.idToken)
            #expect(try await second.jwtBearer(jag).status == 200)

            // The consent granted before is still there: no new interaction.
            let sts = try await second.sts(alice.idToken)
            #expect(sts.status == 200, "\(sts.body)")

            // The session is durable too.
            let resumed = try await second.get(second.authorizeURL(second.authorizeParameters(pkce: .make())), headers: [("Cookie", alice.cookie)])
            #expect(resumed.status == 302)
        } catch {
            second.checkEveryResponse(sourceLocation: #_sourceLocation)
            await second.stop()
            throw error
        }
        second.checkEveryResponse(sourceLocation: #_sourceLocation)
        await second.stop()
    }

    @Test func privateKeysOnDiskAreOwnerOnly() async throws {
        // Even in a data directory others may read, the database (signing keys) and the agent key are 600.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("idp-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let idp = try await IdPHarness.start(dataDirectory: dir)
        for file in ["idp.sqlite", "agent.pem"] {
            let mode = try FileManager.default.attributesOfItem(atPath: dir + "/" + file)[.posixPermissions] as? Int
            #expect(mode.map { $0 & 0o077 } == 0, "\(file) has mode \(String(mode ?? 0, radix: 8))")
        }
        await idp.stop()
        let fresh = try await IdPHarness.start()
        let mode = try FileManager.default.attributesOfItem(atPath: fresh.dataDirectory)[.posixPermissions] as? Int
        #expect(mode == 0o700)
        await fresh.stop()
    }

    @Test(.timeLimit(.minutes(2)))
    func usedCodesAndAssertionsStayUsedAcrossARestart() async throws {
        let first = try await IdPHarness.start()
        let signIn: IdPHarness.SignIn
        let assertion: [(String, String)]
        let idToken: String
        do {
            signIn = try await first.signIn()
            let tokens = try await first.redeem(code: signIn.code, verifier: signIn.pkce.verifier)
            idToken = try #require(tokens.json["id_token"] as? String)
            assertion = try first.assertion(for: first.tokenEndpoint)
            #expect(try await first.exchange(subjectToken: idToken, auth: assertion).status == 200)
        } catch {
            await first.stop()
            throw error
        }
        await first.stop(keepData: true)

        let second = try await IdPHarness.start(dataDirectory: first.dataDirectory, port: first.server.port)
        do {
            expectError(try await second.redeem(code: signIn.code, verifier: signIn.pkce.verifier), "invalid_grant")
            expectError(try await second.exchange(subjectToken: idToken, auth: assertion), "invalid_client", status: 401)
        } catch {
            await second.stop()
            throw error
        }
        second.checkEveryResponse(sourceLocation: #_sourceLocation)
        await second.stop()
    }
}

@Suite("Key rotation")
struct KeyRotationTests {
    @Test func aRotatedKeyStaysInTheJWKSAndItsTokensKeepVerifying() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("idp-rotate-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let store = try IdPStore(path: dir + "/idp.sqlite")
        let ring = try await KeyRing.load(owner: "org", store: store)
        let old = ring.current
        let token = try old.sign(claims: ["iss": "i", "sub": "s", "aud": "a", "iat": Int(Date().timeIntervalSince1970), "exp": Int(Date().timeIntervalSince1970) + 600])
        try await ring.rotate()
        #expect(ring.current.kid != old.kid, "new tokens are signed with the new key")
        #expect(ring.jwks.contains(old.kid) && ring.jwks.contains(ring.current.kid), "both keys are published")
        let verifier = JWTVerifier(policy: TokenPolicy(issuer: "i", audiences: ["a"], types: [nil, "JWT"]), keySet: ring.keySet)
        #expect(try await verifier.verify(token).subject == "s")
        // A restart loads the same state: the new key signs, the old one is still published.
        let reloaded = try await KeyRing.load(owner: "org", store: IdPStore(path: dir + "/idp.sqlite"))
        #expect(reloaded.current.kid == ring.current.kid)
        #expect(reloaded.jwks.contains(old.kid))
    }
}
