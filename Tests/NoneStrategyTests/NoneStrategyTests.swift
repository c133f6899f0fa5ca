import Foundation
import NoneStrategy
import PluginAPI
import PluginTestKit
import Testing

/// The `none` plugin on its own: it takes no parameters and injects nothing.
@Suite("NoneStrategy")
struct NoneStrategyTests {
    static let yaml = """
        connections:
          - name: wiki
            kind: application
            upstream: http://127.0.0.1:8080
            auth:
              strategy: none
        """

    @Test("'strategy: none' alone validates, with or without an agent")
    func validConfig() throws {
        let fixture = try PluginFixture(yaml: Self.yaml, connection: "wiki")
        #expect(fixture.validationError(NoneStrategyFactory()) == nil)
        #expect(fixture.connection.route == "/rest/wiki")
        #expect(fixture.connection.resourceIndicator == "http://127.0.0.1:8080")
        let withAgent = try PluginFixture(yaml: Self.yaml, connection: "wiki", agent: AgentIdentity(id: "agent", keyID: "k", privateKey: nil))
        #expect(withAgent.validationError(NoneStrategyFactory()) == nil)
    }

    @Test("any parameter is an unknown key, at its line and column")
    func unknownKey() throws {
        let fixture = try PluginFixture(yaml: Self.yaml + "\n      header: X-Api-Key", connection: "wiki")
        let error = try #require(fixture.validationError(NoneStrategyFactory()))
        #expect(error.stage == .decoding)
        #expect(error.message == "unknown key 'header'", "\(error)")
        #expect(error.hint == "remove it")
        #expect(error.location == PluginAPI.SourceLocation(line: 7, column: 7), "\(error)")
    }

    @Test("a built connection with an auth block written for another plugin is refused")
    func otherStrategy() throws {
        let fixture = try PluginFixture(
            connection: TestConnection.mcpServer("docs", upstream: "http://127.0.0.1:8081/mcp"), auth: "{strategy: idjag}")
        let error = try #require(fixture.validationError(NoneStrategyFactory()))
        #expect(error.stage == .strategy)
        #expect(error.key == "strategy")
    }

    @Test("a fixed, empty credential that never expires; every caller gets the same, without headers")
    func fixedCredential() async throws {
        let fixture = try PluginFixture(connection: TestConnection.mcpServer("docs", upstream: "http://127.0.0.1:8081/mcp"), auth: "strategy: none")
        let plugin = try await fixture.provision(NoneStrategyFactory())
        #expect(plugin.strategy.credentialScope == .uncached)
        #expect(plugin.strategy.statusDetails.isEmpty)
        let fixed = try #require(plugin.strategy.fixedCredential)
        #expect(fixed.headers.isEmpty)
        #expect(fixed.expiresAt == nil)
        #expect(fixed.scopes.isEmpty)

        let secret = "eyJhbGciOiJSUzI1NiJ9.not-a-real-id-token-but-secret-all-the-same.sig"
        for caller in [TestCaller.withClaims(subject: "00u-alice", subjectToken: secret), TestCaller.withClaims(subject: "00u-bob")] {
            for reason in [CredentialReason.initial, .refresh, .stepUp] {
                let outcome = await plugin.credential(for: caller, scopes: ["anything"], reason: reason)
                let credential = try #require(outcome.injected, "\(outcome)")
                #expect(credential.headers.isEmpty)
                #expect(credential.bearerToken == nil)
                #expect(credential.expiresAt == nil)
            }
        }
        plugin.clock.advance(by: .seconds(86_400))
        #expect(await plugin.credential(for: TestCaller.withClaims()).injected?.headers.isEmpty == true)
        #expect(plugin.uses.all.isEmpty)
        #expect(!plugin.log.reveals(secret))
        await plugin.shutdown()
    }

    @Test("step-up is never possible")
    func stepUp() async throws {
        let fixture = try PluginFixture(yaml: Self.yaml, connection: "wiki")
        let plugin = try await fixture.provision(NoneStrategyFactory())
        guard case .notPossible(let reason) = plugin.stepUp(requiredScopes: ["repo"], held: Credential()) else {
            Issue.record("none offered a step-up")
            return
        }
        #expect(!reason.isEmpty)
    }

    @Test("the kit's caller from an ID token reads its claims and keeps the token redacted")
    func callerFromIDToken() throws {
        func segment(_ json: String) -> String {
            Data(json.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        let token = segment(#"{"alg":"RS256"}"#) + "."
            + segment(#"{"iss":"https://idp.example.test","sub":"00u-alice","aud":["agent0"],"exp":2000000000,"uid":"00u-alice","email":"alice@example.test","name":"Alice"}"#)
            + ".c2ln"
        let caller = try TestCaller.fromIDToken(token)
        #expect(caller.subject == "00u-alice")
        #expect(caller.issuer == "https://idp.example.test")
        #expect(caller.audience == "agent0")
        #expect(caller.email == "alice@example.test")
        #expect(caller.expiresAt == Date(timeIntervalSince1970: 2_000_000_000))
        #expect(caller.subjectToken.reveal() == token)
        #expect("\(caller)".contains(token) == false)
        #expect(throws: TestKitError.self) { try TestCaller.fromIDToken("not-a-jwt") }
    }
}
