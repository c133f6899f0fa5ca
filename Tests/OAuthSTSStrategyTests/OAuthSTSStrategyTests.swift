import AsyncHTTPClient
import Foundation
import OAuthCore
import OAuthSTSStrategy
import PluginAPI
import PluginTestKit
import Testing

extension DevelopmentIdP {
    /// The IdP's GitHub app (development configuration): resource, token issuer and audience.
    static let githubResource = "orn:dev:idp:github"
    static let githubAudience = "http://127.0.0.1:7000"
    var githubIssuer: String { issuer + "/apps/github" }
}

/// The `oauth-sts` plugin on its own: its config checks, and against the real development IdP
/// brokered consent (interaction_required, the user approves, a token), step-up, refresh and
/// an unreachable IdP.
@Suite("OAuthSTSStrategy")
struct OAuthSTSStrategyTests {
    /// connections.yaml for `github` (oauth-sts); `auth` replaces its auth block.
    static func yaml(auth: String? = nil) -> String {
        """
        connections:
          - name: github
            kind: application
            title: GitHub
            upstream: \(DevelopmentIdP.githubAudience)
            auth:
        \(auth ?? """
                  strategy: oauth-sts
                  resource: \(DevelopmentIdP.githubResource)
            """)
        """
    }

    static func fixture(_ idp: DevelopmentIdP, auth: String? = nil) throws -> PluginFixture {
        try PluginFixture(yaml: yaml(auth: auth), connection: "github", agent: idp.agent)
    }

    /// A fixture for the config checks: no IdP needed, any agent with a key.
    static func offlineFixture(auth: String, agent: AgentIdentity? = AgentIdentity(id: "agent", keyID: "k", privateKey: Secret("unused"))) throws
        -> PluginFixture
    {
        try PluginFixture(yaml: yaml(auth: auth), connection: "github", agent: agent)
    }

    /// Verifies `token` against the GitHub app's published keys (signature, issuer, audience,
    /// type, lifetime) and returns its claims.
    static func verifiedGitHubToken(_ token: String, _ idp: DevelopmentIdP) async throws -> JWTClaims {
        let keys = JWKSKeySet(issuer: idp.githubIssuer, jwksURI: idp.githubIssuer + "/keys", httpClient: HTTPClient.shared)
        return try await JWTVerifier(policy: .accessToken(issuer: idp.githubIssuer, resource: DevelopmentIdP.githubAudience), keySet: keys).verify(token)
    }

    /// Nothing secret in the plugin's log: no token, no assertion, no key.
    static func expectNothingSecretLogged(_ plugin: StrategyUnderTest, _ secrets: [String], sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let shown = plugin.log.secretsShown(secrets)
        #expect(shown.isEmpty, "the log shows \(shown):\n\(plugin.log.text)", sourceLocation: sourceLocation)
    }

    /// The user consents: the first exchange asks for it, the user approves at the IdP.
    static func consent(_ user: DevelopmentIdP.User, _ plugin: StrategyUnderTest, _ idp: DevelopmentIdP) async throws {
        let outcome = await plugin.credential(for: try TestCaller.fromIDToken(user.idToken))
        let interaction = try #require(outcome.interaction, "\(outcome)")
        try await idp.browser.approve(interaction.uri, as: user)
    }

    // MARK: config

    @Test("a complete auth block validates")
    func validConfig() throws {
        let fixture = try Self.offlineFixture(auth: """
                  strategy: oauth-sts
                  resource: orn:dev:idp:github
                  token_endpoint: http://127.0.0.1:9/oauth2/v1/token
            """)
        #expect(fixture.validationError(OAuthSTSStrategyFactory()) == nil)
        #expect(fixture.connection.route == "/rest/github")
    }

    @Test("it declares what doctor checks: the org exchange for its resource, at its token endpoint")
    func requirements() throws {
        let fixture = try Self.offlineFixture(auth: """
                  strategy: oauth-sts
                  resource: orn:dev:idp:github
                  token_endpoint: http://127.0.0.1:9/oauth2/v1/token
            """)
        let needs = try fixture.requirements(OAuthSTSStrategyFactory())
        #expect(needs == StrategyRequirements(exchangesAtOrg: true, orgTokenEndpoint: "http://127.0.0.1:9/oauth2/v1/token", orgResource: "orn:dev:idp:github"))
    }

    @Test("a missing 'resource' is a decoding error naming the key")
    func missingResource() throws {
        let fixture = try Self.offlineFixture(auth: """
                  strategy: oauth-sts
            """)
        let error = try #require(fixture.validationError(OAuthSTSStrategyFactory()))
        #expect(error.stage == .decoding)
        #expect(error.message.contains("missing required key 'resource'"), "\(error)")
    }

    @Test("an unknown key is refused at its line and column, with the known keys as hint")
    func unknownKey() throws {
        let fixture = try Self.offlineFixture(auth: """
                  strategy: oauth-sts
                  resource: orn:dev:idp:github
                  scopes: [repo]
            """)
        let error = try #require(fixture.validationError(OAuthSTSStrategyFactory()))
        #expect(error.stage == .decoding)
        #expect(error.message == "unknown key 'scopes'", "\(error)")
        #expect(error.hint == "known keys here: resource, token_endpoint")
        #expect(error.location == PluginAPI.SourceLocation(line: 9, column: 7), "\(error)")
    }

    @Test("a resource with spaces, or empty, is refused at 'resource'", arguments: ["\"orn:dev:idp:github orn:dev:idp:other\"", "\"\""])
    func badResource(resource: String) throws {
        let fixture = try Self.offlineFixture(auth: """
                  strategy: oauth-sts
                  resource: \(resource)
            """)
        let error = try #require(fixture.validationError(OAuthSTSStrategyFactory()))
        #expect(error.stage == .validation)
        #expect(error.key == "resource")
        #expect(error.location == PluginAPI.SourceLocation(line: 8, column: 17), "\(error)")
    }

    @Test("without the agent identity the block is refused as a whole")
    func noAgent() throws {
        let fixture = try Self.offlineFixture(auth: """
                  strategy: oauth-sts
                  resource: orn:dev:idp:github
            """, agent: nil)
        let error = try #require(fixture.validationError(OAuthSTSStrategyFactory()))
        #expect(error.stage == .validation)
        #expect(error.key == nil)
        #expect(error.message == "oauth-sts needs the agent identity")
    }

    @Test("an auth block written for another plugin is refused")
    func otherStrategy() throws {
        let fixture = try Self.offlineFixture(auth: """
                  strategy: idjag
                  resource: orn:dev:idp:github
            """)
        let error = try #require(fixture.validationError(OAuthSTSStrategyFactory()))
        #expect(error.stage == .strategy)
        #expect(error.key == "strategy")
    }

    // MARK: credentials, against the real IdP

    @Test("before consent: interaction_required with the IdP's interaction URI; after the user approved: a token for the app")
    func consentThenToken() async throws {
        try await withIdP { idp in
            let alice = try await idp.signIn("alice")
            let plugin = try await Self.fixture(idp).provision(OAuthSTSStrategyFactory())
            #expect(plugin.strategy.credentialScope == .perUser)
            #expect(plugin.strategy.statusDetails == ["resource": DevelopmentIdP.githubResource])
            let caller = try TestCaller.fromIDToken(alice.idToken)

            let first = await plugin.credential(for: caller)
            let interaction = try #require(first.interaction, "\(first)")
            #expect(interaction.uri.hasPrefix(idp.issuer + "/oauth2/v1/interaction/"), "\(interaction.uri)")
            #expect(interaction.message.contains("GitHub"), "\(interaction.message)")

            try await idp.browser.approve(interaction.uri, as: alice)

            let second = await plugin.credential(for: caller)
            let credential = try #require(second.injected, "\(second)")
            #expect(credential.scopes == ["repo"])
            #expect(credential.expiresAt == plugin.clock.now().addingTimeInterval(3600))
            let token = try #require(credential.bearerToken)
            let claims = try await Self.verifiedGitHubToken(token, idp)
            #expect(claims.issuer == idp.githubIssuer)
            #expect(claims.audience == [DevelopmentIdP.githubAudience])
            #expect(claims.subject == "00u-alice")
            #expect(claims.scopes == ["repo"])
            #expect(claims.resource == DevelopmentIdP.githubResource)
            #expect(claims.clientID == DevelopmentIdP.agentID)
            #expect(plugin.log.entries.contains { $0.message == "third-party token obtained through OAuth STS" && $0.metadata["connection"] == "github" })
            Self.expectNothingSecretLogged(plugin, [token, alice.idToken])
        }
    }

    @Test("consent is per user: alice's approval does not give bob a token")
    func consentIsPerUser() async throws {
        try await withIdP { idp in
            let alice = try await idp.signIn("alice")
            let bob = try await idp.signIn("bob")
            let plugin = try await Self.fixture(idp).provision(OAuthSTSStrategyFactory())
            try await Self.consent(alice, plugin, idp)

            #expect(await plugin.credential(for: try TestCaller.fromIDToken(alice.idToken)).injected != nil)
            let forBob = await plugin.credential(for: try TestCaller.fromIDToken(bob.idToken))
            #expect(forBob.interaction != nil, "\(forBob)")
        }
    }

    @Test("step-up is not possible: the app's scopes are fixed by the IdP")
    func stepUp() async throws {
        try await withIdP { idp in
            let alice = try await idp.signIn("alice")
            let plugin = try await Self.fixture(idp).provision(OAuthSTSStrategyFactory())
            try await Self.consent(alice, plugin, idp)
            let held = try #require(await plugin.credential(for: try TestCaller.fromIDToken(alice.idToken)).injected)
            guard case .notPossible(let reason) = plugin.stepUp(requiredScopes: ["admin:org"], held: held) else {
                Issue.record("oauth-sts offered a step-up")
                return
            }
            #expect(!reason.isEmpty)
        }
    }

    @Test("refresh: a new token, its expiry counted from the strategy's clock")
    func refresh() async throws {
        try await withIdP { idp in
            let alice = try await idp.signIn("alice")
            let plugin = try await Self.fixture(idp).provision(OAuthSTSStrategyFactory())
            try await Self.consent(alice, plugin, idp)
            let caller = try TestCaller.fromIDToken(alice.idToken)
            let first = try #require(await plugin.credential(for: caller).injected)
            let start = plugin.clock.now()

            plugin.clock.advance(by: 30)
            let outcome = await plugin.credential(for: caller, reason: .refresh)
            let refreshed = try #require(outcome.injected, "\(outcome)")
            #expect(refreshed.expiresAt == start.addingTimeInterval(30 + 3600))
            let token = try #require(refreshed.bearerToken)
            let firstToken = try #require(first.bearerToken)
            #expect(token != firstToken)
            let claims = try await Self.verifiedGitHubToken(token, idp)
            #expect(claims.jwtID != (try await Self.verifiedGitHubToken(firstToken, idp)).jwtID)
            #expect(plugin.log.entries.contains { $0.metadata["reason"] == "refresh" })
            Self.expectNothingSecretLogged(plugin, [firstToken, token, alice.idToken])
        }
    }

    @Test("a resource the IdP does not know: token_exchange_failed with the IdP's error")
    func unknownResource() async throws {
        try await withIdP { idp in
            let alice = try await idp.signIn("alice")
            let plugin = try await Self.fixture(idp, auth: """
                      strategy: oauth-sts
                      resource: orn:dev:idp:nothing
                """).provision(OAuthSTSStrategyFactory())
            let outcome = await plugin.credential(for: try TestCaller.fromIDToken(alice.idToken))
            let failure = try #require(outcome.failure, "\(outcome)")
            #expect(failure.code == "token_exchange_failed")
            #expect(failure.httpStatus == 502)
            #expect(failure.detail?.contains("invalid_target") == true, "\(failure)")
        }
    }

    @Test("the IdP unreachable: idp_unavailable, 503, retry after 5 s")
    func idpUnreachable() async throws {
        try await withIdP { idp in
            let alice = try await idp.signIn("alice")
            let plugin = try await Self.fixture(idp).provision(OAuthSTSStrategyFactory())
            await idp.stop()

            let outcome = await plugin.credential(for: try TestCaller.fromIDToken(alice.idToken))
            let failure = try #require(outcome.failure, "\(outcome)")
            #expect(failure.code == "idp_unavailable")
            #expect(failure.httpStatus == 503)
            #expect(failure.retryAfter == 5)
            #expect(failure.message == "the identity provider could not be reached; try again shortly")
            Self.expectNothingSecretLogged(plugin, [alice.idToken])
        }
    }

    @Test("the log never contains a token: interaction, consent, tokens and refreshes for two users")
    func nothingSecretIsLogged() async throws {
        try await withIdP { idp in
            let users = [try await idp.signIn("alice"), try await idp.signIn("bob")]
            let plugin = try await Self.fixture(idp).provision(OAuthSTSStrategyFactory())
            var secrets = users.map(\.idToken) + [try #require(idp.agent.privateKey?.reveal())]
            for user in users {
                try await Self.consent(user, plugin, idp)
                let caller = try TestCaller.fromIDToken(user.idToken)
                for reason in [CredentialReason.initial, .refresh] {
                    let outcome = await plugin.credential(for: caller, reason: reason)
                    secrets.append(try #require(outcome.injected?.bearerToken, "\(outcome)"))
                }
            }
            #expect(plugin.log.entries.count == 4)
            Self.expectNothingSecretLogged(plugin, secrets)
            await plugin.shutdown()
        }
    }
}
