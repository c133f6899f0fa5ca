import Foundation
@testable import IdentityProvider
import SwitchboardTesting
import Testing

/// With more than one agent registered: what one agent obtained, or what a user granted to one
/// agent, does not pass to another.
@Suite("Several agents")
struct SeveralAgentsTests {
    static let second = "wlp-dev-agent1"
    static let outsider = "wlp-dev-agent2"

    /// An IdP whose configuration is the development one plus `second` (acting for agent0's
    /// users like the first agent) and `outsider` (acting for no web client).
    static func withAgents(_ body: (IdPHarness) async throws -> Void) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("idp-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var config = IdPConfig.developmentDefaults
        config.agents.append(IdPConfig.Agent(clientID: second, actsFor: ["agent0"], jwks: nil))
        config.agents.append(IdPConfig.Agent(clientID: outsider, actsFor: [], jwks: nil))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        let configPath = dir + "/idp.yaml"  // JSON is YAML
        try encoder.encode(config).write(to: URL(fileURLWithPath: configPath))
        let idp = try await IdPHarness.start(dataDirectory: dir, configPath: configPath, extraAgents: [second, outsider])
        do {
            try await body(idp)
        } catch {
            idp.checkEveryResponse(sourceLocation: #_sourceLocation)
            await idp.stop()
            throw error
        }
        idp.checkEveryResponse(sourceLocation: #_sourceLocation)
        await idp.stop()
    }

    @Test func secondAgentHasItsOwnIDJAGs() async throws {
        try await Self.withAgents { idp in
            let alice = try await idp.tokens(for: "alice")
            let answer = try await idp.exchange(subjectToken: alice.idToken, auth: try idp.assertion(for: idp.tokenEndpoint, agent: Self.second))
            #expect(answer.status == 200, "\(answer.body)")
            let jag = try #require(answer.json["access_token"] as? String)
            #expect(try DecodedJWT(jag).claims["client_id"] as? String == Self.second)
            // The first agent cannot redeem the second agent's ID-JAG…
            expectError(try await idp.jwtBearer(jag), "invalid_grant")
            // …the second can.
            let own = try await idp.jwtBearer(jag, auth: try idp.assertion(for: idp.asTokenEndpoint, agent: Self.second))
            #expect(own.status == 200, "\(own.body)")
            let token = try DecodedJWT(try #require(own.json["access_token"] as? String))
            #expect((token.claims["act"] as? [String: Any])?["sub"] as? String == Self.second)
        }
    }

    @Test func agentNotActingForTheWebClientCannotExchangeItsIDTokens() async throws {
        try await Self.withAgents { idp in
            let alice = try await idp.tokens(for: "alice")
            let answer = try await idp.exchange(subjectToken: alice.idToken, auth: try idp.assertion(for: idp.tokenEndpoint, agent: Self.outsider))
            expectError(answer, "invalid_grant")
        }
    }

    @Test func oneAgentsKeyDoesNotAuthenticateAnother() async throws {
        try await Self.withAgents { idp in
            let alice = try await idp.tokens(for: "alice")
            // Signed with the first agent's key but claiming to be the second.
            let auth = try idp.customAssertion(endpoint: idp.tokenEndpoint, issuer: Self.second, subject: Self.second)
            expectError(try await idp.exchange(subjectToken: alice.idToken, auth: auth), "invalid_client", status: 401)
        }
    }

    @Test func anotherAgentCannotRevokeTheGrant() async throws {
        try await Self.withAgents { idp in
            let alice = try await idp.tokens(for: "alice")
            try await idp.approve(try await idp.interactionURI(alice.idToken), cookie: alice.cookie)
            let token = try #require(try await idp.sts(alice.idToken).json["access_token"] as? String)
            let answer = try await idp.post(idp.revokeEndpoint, form: [("token", token), ("token_type_hint", "oauth_sts")]
                                            + (try idp.assertion(for: idp.revokeEndpoint, agent: Self.second)))
            expectError(answer, "unauthorized_client")
            #expect(try await idp.sts(alice.idToken).status == 200)
        }
    }

    @Test func consentGivenToOneAgentDoesNotCoverAnother() async throws {
        try await Self.withAgents { idp in
            let alice = try await idp.tokens(for: "alice")
            // alice approves the page that names the first agent.
            let uri = try await idp.interactionURI(alice.idToken)
            let page = try await idp.consentPage(uri, cookie: alice.cookie)
            #expect(page.body.contains(IdPHarness.agentID))
            #expect(!page.body.contains(Self.second))
            try await idp.approve(uri, cookie: alice.cookie)
            #expect(try await idp.sts(alice.idToken).status == 200)

            // The second agent asks for the same app for the same user.
            let form = [("grant_type", IdPHarness.tokenExchangeGrant), ("requested_token_type", IdPHarness.stsType),
                        ("subject_token", alice.idToken), ("subject_token_type", IdPHarness.idTokenType), ("resource", IdPHarness.githubResource)]
            let other = try await idp.post(idp.tokenEndpoint, form: form + (try idp.assertion(for: idp.tokenEndpoint, agent: Self.second)))
            expectError(other, "interaction_required")
            let secondURI = try #require(other.json["interaction_uri"] as? String)
            let secondPage = try await idp.consentPage(secondURI, cookie: alice.cookie)
            #expect(secondPage.body.contains(Self.second))

            // Once alice approves it too, each agent has its own consent; revoking one leaves the other.
            try await idp.approve(secondURI, cookie: alice.cookie)
            let secondToken = try await idp.post(idp.tokenEndpoint, form: form + (try idp.assertion(for: idp.tokenEndpoint, agent: Self.second)))
            #expect(secondToken.status == 200, "\(secondToken.body)")
            let firstToken = try #require(try await idp.sts(alice.idToken).json["access_token"] as? String)
            let revoked = try await idp.post(idp.revokeEndpoint, form: [("token", firstToken), ("token_type_hint", "oauth_sts")] + (try idp.assertion(for: idp.revokeEndpoint)))
            #expect(revoked.status == 200)
            expectError(try await idp.sts(alice.idToken), "interaction_required")
            let stillThere = try await idp.post(idp.tokenEndpoint, form: form + (try idp.assertion(for: idp.tokenEndpoint, agent: Self.second)))
            #expect(stillThere.status == 200, "\(stillThere.body)")
        }
    }
}
