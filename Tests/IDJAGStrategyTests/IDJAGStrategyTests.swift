import AsyncHTTPClient
import Crypto
import Foundation
import IDJAGStrategy
import OAuthCore
import PluginAPI
import PluginTestKit
import Testing

extension DevelopmentIdP {
    /// The resource the IdP's `todo-mcp` authorization server issues tokens for.
    static let todoResource = "http://127.0.0.1:5002/mcp"
    var todoAuthorizationServer: String { issuer + "/oauth2/todo-mcp" }
}

/// The `idjag` plugin on its own: its config checks, and against the real development IdP the
/// chain ID token → ID-JAG → access token, step-up, refresh and an unreachable IdP.
@Suite("IDJAGStrategy")
struct IDJAGStrategyTests {
    static let defaultScopes: Set<String> = ["mcp:connect", "mcp:tools:read"]

    /// connections.yaml for `todo0` (idjag through `todo-mcp-as`); `auth` replaces its auth block.
    static func yaml(issuer: String, auth: String? = nil) -> String {
        """
        connections:
          - name: todo-mcp-as
            kind: authorization_server
            issuer: \(issuer)/oauth2/todo-mcp
          - name: todo-rest
            kind: application
            upstream: http://127.0.0.1:5003
          - name: todo0
            kind: mcp_server
            upstream: \(DevelopmentIdP.todoResource)
            auth:
        \(auth ?? """
                  strategy: idjag
                  authorization_server: todo-mcp-as
                  scopes: [mcp:connect, mcp:tools:read]
            """)
        """
    }

    static func fixture(_ idp: DevelopmentIdP) throws -> PluginFixture {
        try PluginFixture(yaml: yaml(issuer: idp.issuer), connection: "todo0", agent: idp.agent)
    }

    /// A fixture for the config checks: no IdP needed, any agent with a key.
    static func offlineFixture(auth: String, agent: AgentIdentity? = AgentIdentity(id: "agent", keyID: "k", privateKey: Secret("unused"))) throws
        -> PluginFixture
    {
        try PluginFixture(yaml: yaml(issuer: "http://127.0.0.1:9", auth: auth), connection: "todo0", agent: agent)
    }

    /// Verifies `token` against the todo-mcp AS's published keys (signature, issuer, audience,
    /// type, lifetime) and returns its claims.
    static func verifiedAccessToken(_ token: String, _ idp: DevelopmentIdP) async throws -> JWTClaims {
        let keys = JWKSKeySet(issuer: idp.todoAuthorizationServer, httpClient: HTTPClient.shared)
        return try await JWTVerifier(policy: .accessToken(issuer: idp.todoAuthorizationServer, resource: DevelopmentIdP.todoResource), keySet: keys)
            .verify(token)
    }

    /// Nothing secret in the plugin's log: no token, no assertion, no key.
    static func expectNothingSecretLogged(_ plugin: StrategyUnderTest, _ secrets: [String], sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let shown = plugin.log.secretsShown(secrets)
        #expect(shown.isEmpty, "the log shows \(shown):\n\(plugin.log.text)", sourceLocation: sourceLocation)
    }

    // MARK: config

    @Test("a complete auth block validates")
    func validConfig() throws {
        let fixture = try Self.offlineFixture(auth: """
                  strategy: idjag
                  authorization_server: todo-mcp-as
                  scopes: [mcp:connect]
                  token_endpoint: http://127.0.0.1:9/oauth2/v1/token
            """)
        #expect(fixture.validationError(IDJAGStrategyFactory()) == nil)
        #expect(fixture.connection.resourceIndicator == DevelopmentIdP.todoResource)
        #expect(fixture.lookup("todo-mcp-as")?.issuer == "http://127.0.0.1:9/oauth2/todo-mcp")
    }

    @Test("it declares what doctor checks: its authorization server and scopes, the org exchange, the protected resource")
    func requirements() throws {
        let fixture = try Self.offlineFixture(auth: """
                  strategy: idjag
                  authorization_server: todo-mcp-as
                  scopes: [mcp:connect, mcp:tools:read]
            """)
        let needs = try fixture.requirements(IDJAGStrategyFactory())
        #expect(needs == StrategyRequirements(
            authorizationServer: "todo-mcp-as", scopes: ["mcp:connect", "mcp:tools:read"], exchangesAtOrg: true,
            protectedResource: DevelopmentIdP.todoResource))
    }

    @Test("a missing 'scopes' is a decoding error naming the key")
    func missingScopes() throws {
        let fixture = try Self.offlineFixture(auth: """
                  strategy: idjag
                  authorization_server: todo-mcp-as
            """)
        let error = try #require(fixture.validationError(IDJAGStrategyFactory()))
        #expect(error.stage == .decoding)
        #expect(error.message.contains("missing required key 'scopes'"), "\(error)")
        #expect(error.hint == "add 'scopes: …'")
    }

    @Test("an unknown key is refused at its line and column, with the known keys as hint")
    func unknownKey() throws {
        let fixture = try Self.offlineFixture(auth: """
                  strategy: idjag
                  authorization_server: todo-mcp-as
                  scopes: [mcp:connect]
                  scope: mcp:tools:read
            """)
        let error = try #require(fixture.validationError(IDJAGStrategyFactory()))
        #expect(error.stage == .decoding)
        #expect(error.message == "unknown key 'scope'", "\(error)")
        #expect(error.hint == "known keys here: authorization_server, scopes, token_endpoint")
        #expect(error.location == PluginAPI.SourceLocation(line: 15, column: 7), "\(error)")
    }

    @Test("an authorization server that does not exist is refused at the 'authorization_server' value")
    func unknownAuthorizationServer() throws {
        let fixture = try Self.offlineFixture(auth: """
                  strategy: idjag
                  authorization_server: nowhere-as
                  scopes: [mcp:connect]
            """)
        let error = try #require(fixture.validationError(IDJAGStrategyFactory()))
        #expect(error.stage == .validation)
        #expect(error.key == "authorization_server")
        #expect(error.message == "no connection named 'nowhere-as'")
        #expect(error.location == PluginAPI.SourceLocation(line: 13, column: 29), "\(error)")
        #expect(error.hint?.contains("authorization_server connection") == true)
    }

    @Test("a referenced connection that is not an authorization server is refused")
    func referenceToAnApplication() throws {
        let fixture = try Self.offlineFixture(auth: """
                  strategy: idjag
                  authorization_server: todo-rest
                  scopes: [mcp:connect]
            """)
        let error = try #require(fixture.validationError(IDJAGStrategyFactory()))
        #expect(error.key == "authorization_server")
        #expect(error.message == "'todo-rest' is a application, not an authorization_server")
    }

    @Test("empty scopes, and a scope with a space, are refused at 'scopes'", arguments: ["[]", "[\"mcp:connect mcp:tools:read\"]", "[\"\"]"])
    func badScopes(scopes: String) throws {
        let fixture = try Self.offlineFixture(auth: """
                  strategy: idjag
                  authorization_server: todo-mcp-as
                  scopes: \(scopes)
            """)
        let error = try #require(fixture.validationError(IDJAGStrategyFactory()))
        #expect(error.stage == .validation)
        #expect(error.key == "scopes")
        #expect(error.message == "scopes must be a non-empty list of scope names")
    }

    @Test("without the agent identity the block is refused as a whole")
    func noAgent() throws {
        let fixture = try Self.offlineFixture(auth: """
                  strategy: idjag
                  authorization_server: todo-mcp-as
                  scopes: [mcp:connect]
            """, agent: nil)
        let error = try #require(fixture.validationError(IDJAGStrategyFactory()))
        #expect(error.stage == .validation)
        #expect(error.key == nil)
        #expect(error.message == "idjag needs the agent identity")
        #expect(error.hint?.contains("agent:") == true)
    }

    @Test("an agent key of a kind the plugin does not sign with (P-384, made for this run) fails provisioning with a clear error")
    func unusableAgentKey() async throws {
        let unusable = P384.Signing.PrivateKey().pemRepresentation  // generated here: no key material in the tree
        let fixture = try Self.offlineFixture(auth: """
                  strategy: idjag
                  authorization_server: todo-mcp-as
                  scopes: [mcp:connect]
            """, agent: AgentIdentity(id: "agent", keyID: "k", privateKey: Secret(unusable)))
        #expect(fixture.validationError(IDJAGStrategyFactory()) == nil)
        do {
            _ = try await fixture.provision(IDJAGStrategyFactory())
            Issue.record("a strategy was provisioned with an unusable key")
        } catch let error as PluginConfigError {
            #expect(error.message.contains("not a usable RSA"), "\(error)")
        }
    }

    // MARK: credentials, against the real IdP

    @Test("ID token → ID-JAG → access token for the configured scopes, its claims verified against the AS's keys")
    func credentialForACaller() async throws {
        try await withIdP { idp in
            let alice = try await idp.signIn("alice")
            let plugin = try await Self.fixture(idp).provision(IDJAGStrategyFactory())
            #expect(plugin.strategy.credentialScope == .perUser)
            #expect(plugin.strategy.fixedCredential == nil)
            #expect(plugin.strategy.statusDetails["authorization_server"] == "todo-mcp-as")
            #expect(plugin.strategy.statusDetails["authorization_server_issuer"] == idp.todoAuthorizationServer)

            let caller = try TestCaller.fromIDToken(alice.idToken)
            #expect(caller.subject == "00u-alice")
            #expect(caller.issuer == idp.issuer)
            let outcome = await plugin.credential(for: caller)
            let credential = try #require(outcome.injected, "\(outcome)")
            #expect(credential.scopes == Self.defaultScopes)
            #expect(credential.expiresAt == plugin.clock.now().addingTimeInterval(3600))
            let token = try #require(credential.bearerToken)

            let claims = try await Self.verifiedAccessToken(token, idp)
            #expect(claims.issuer == idp.todoAuthorizationServer)
            #expect(claims.audience == [DevelopmentIdP.todoResource])
            #expect(claims.subject == "00u-alice")
            #expect(Set(claims.scopes) == Self.defaultScopes)
            #expect(claims.clientID == DevelopmentIdP.agentID)
            #expect(claims.actorSubject == DevelopmentIdP.agentID)

            // The AS it minted through is reported, valid until the ID-JAG's expiry (5 min).
            #expect(plugin.uses.all.map(\.connection) == ["todo-mcp-as"])
            #expect(plugin.uses.all.first?.validUntil == plugin.clock.now().addingTimeInterval(300))
            #expect(plugin.log.entries.contains { $0.message == "access token obtained through ID-JAG" && $0.metadata["connection"] == "todo0" })
            Self.expectNothingSecretLogged(plugin, [token, alice.idToken])
        }
    }

    @Test("step-up: a challenge for a new scope is possible with held ∪ challenged, and the new token carries it; nothing new is not possible")
    func stepUp() async throws {
        try await withIdP { idp in
            let alice = try await idp.signIn("alice")
            let plugin = try await Self.fixture(idp).provision(IDJAGStrategyFactory())
            let caller = try TestCaller.fromIDToken(alice.idToken)
            let held = try #require(await plugin.credential(for: caller).injected)

            let decision = plugin.stepUp(requiredScopes: ["mcp:tools:manage"], held: held)
            let wanted = Self.defaultScopes.union(["mcp:tools:manage"])
            #expect(decision == .possible(scopes: wanted))

            let outcome = await plugin.credential(for: caller, scopes: wanted, reason: .stepUp)
            let wider = try #require(outcome.injected, "\(outcome)")
            #expect(wider.scopes == wanted)
            let token = try #require(wider.bearerToken)
            #expect(Set(try await Self.verifiedAccessToken(token, idp).scopes) == wanted)

            guard case .notPossible(let reason) = plugin.stepUp(requiredScopes: ["mcp:connect", "mcp:tools:manage"], held: wider) else {
                Issue.record("a challenge for scopes already held was deemed possible")
                return
            }
            #expect(!reason.isEmpty)
            Self.expectNothingSecretLogged(plugin, [token, try #require(held.bearerToken), alice.idToken])
        }
    }

    @Test("refresh: a new token, its expiry counted from the strategy's clock")
    func refresh() async throws {
        try await withIdP { idp in
            let alice = try await idp.signIn("alice")
            let plugin = try await Self.fixture(idp).provision(IDJAGStrategyFactory())
            let caller = try TestCaller.fromIDToken(alice.idToken)
            let first = try #require(await plugin.credential(for: caller).injected)
            let start = plugin.clock.now()

            plugin.clock.advance(by: 30)
            let outcome = await plugin.credential(for: caller, reason: .refresh)
            let refreshed = try #require(outcome.injected, "\(outcome)")
            #expect(refreshed.expiresAt == start.addingTimeInterval(30 + 3600))
            #expect(refreshed.scopes == Self.defaultScopes)
            let token = try #require(refreshed.bearerToken)
            let firstToken = try #require(first.bearerToken)
            #expect(token != firstToken)
            let a = try await Self.verifiedAccessToken(firstToken, idp)
            let b = try await Self.verifiedAccessToken(token, idp)
            #expect(a.jwtID != b.jwtID)
            #expect(b.subject == "00u-alice")
            #expect(plugin.uses.all.count == 2)
            #expect(plugin.log.entries.contains { $0.metadata["reason"] == "refresh" })
            Self.expectNothingSecretLogged(plugin, [firstToken, token, alice.idToken])
        }
    }

    @Test("a scope the authorization server does not offer: token_exchange_failed with the IdP's error")
    func scopeRefused() async throws {
        try await withIdP { idp in
            let alice = try await idp.signIn("alice")
            let plugin = try await Self.fixture(idp).provision(IDJAGStrategyFactory())
            let outcome = await plugin.credential(for: try TestCaller.fromIDToken(alice.idToken), scopes: ["mcp:connect", "admin:everything"], reason: .stepUp)
            let failure = try #require(outcome.failure, "\(outcome)")
            #expect(failure.code == "token_exchange_failed")
            #expect(failure.httpStatus == 502)
            #expect(failure.detail?.contains("invalid_scope") == true, "\(failure)")
            Self.expectNothingSecretLogged(plugin, [alice.idToken])
        }
    }

    @Test("the IdP unreachable: idp_unavailable, 503, retry after 5 s")
    func idpUnreachable() async throws {
        try await withIdP { idp in
            let alice = try await idp.signIn("alice")
            let plugin = try await Self.fixture(idp).provision(IDJAGStrategyFactory())
            await idp.stop()

            let outcome = await plugin.credential(for: try TestCaller.fromIDToken(alice.idToken))
            let failure = try #require(outcome.failure, "\(outcome)")
            #expect(failure.code == "idp_unavailable")
            #expect(failure.httpStatus == 503)
            #expect(failure.retryAfter == 5)
            #expect(failure.message == "the identity provider could not be reached; try again shortly")
            #expect(plugin.uses.all.isEmpty)
            Self.expectNothingSecretLogged(plugin, [alice.idToken])
        }
    }

    @Test("the log never contains a token across a caller's whole life: first call, step-up, refresh, a second user")
    func nothingSecretIsLogged() async throws {
        try await withIdP { idp in
            let alice = try await idp.signIn("alice")
            let bob = try await idp.signIn("bob")
            let plugin = try await Self.fixture(idp).provision(IDJAGStrategyFactory())
            var secrets = [alice.idToken, bob.idToken, try #require(idp.agent.privateKey?.reveal())]
            for user in [alice, bob] {
                let caller = try TestCaller.fromIDToken(user.idToken)
                let outcomes = [
                    await plugin.credential(for: caller),
                    await plugin.credential(for: caller, scopes: Self.defaultScopes.union(["mcp:tools:manage"]), reason: .stepUp),
                    await plugin.credential(for: caller, reason: .refresh),
                ]
                for outcome in outcomes { secrets.append(try #require(outcome.injected?.bearerToken, "\(outcome)")) }
            }
            #expect(plugin.log.entries.count == 6)
            Self.expectNothingSecretLogged(plugin, secrets)
            await plugin.shutdown()
        }
    }
}
