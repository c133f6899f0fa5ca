import Foundation
@testable import Gateway
import PluginAPI
import SwitchboardJSON
import OAuthCore
import StandardPlugins
import Testing

// MARK: - Helpers

/// Loads YAML text with the built-in plugins and a fixed environment.
private func unitLoad(
    _ yaml: String, environment: [String: String] = [:], baseDirectory: String = "/nonexistent-base"
) throws(ConfigErrors) -> RegistryPlan {
    try RegistryLoader(plugins: StandardPlugins.registry(), environment: environment)
        .load(text: yaml, file: "connections.yaml", baseDirectory: baseDirectory)
}

/// The errors loading `yaml` produces; records an issue when it loads.
private func unitErrors(
    _ yaml: String, environment: [String: String] = [:], baseDirectory: String = "/nonexistent-base",
    sourceLocation: Testing.SourceLocation = #_sourceLocation
) -> [ConfigError] {
    do {
        let plan = try unitLoad(yaml, environment: environment, baseDirectory: baseDirectory)
        Issue.record("expected the config to be rejected, it loaded \(plan.connections.count) connection(s)", sourceLocation: sourceLocation)
        return []
    } catch {
        return error.errors
    }
}

/// Asserts exactly one error, at `line:column`, whose message contains every string in `message`
/// and whose hint contains every string in `hint`.
private func expectOneError(
    _ errors: [ConfigError], line: Int, column: Int, message: [String], hint: [String] = [],
    sourceLocation: Testing.SourceLocation = #_sourceLocation
) {
    #expect(errors.count == 1, "errors: \(errors)", sourceLocation: sourceLocation)
    guard let e = errors.first else { return }
    expectError(e, line: line, column: column, message: message, hint: hint, sourceLocation: sourceLocation)
}

private func expectError(
    _ e: ConfigError, line: Int, column: Int, message: [String], hint: [String] = [],
    sourceLocation: Testing.SourceLocation = #_sourceLocation
) {
    #expect(e.file == "connections.yaml", sourceLocation: sourceLocation)
    #expect(e.location == PluginAPI.SourceLocation(line: line, column: column), "\(e)", sourceLocation: sourceLocation)
    for m in message {
        #expect(e.message.contains(m), "message '\(e.message)' lacks '\(m)'", sourceLocation: sourceLocation)
    }
    for h in hint {
        #expect(e.hint?.contains(h) == true, "hint '\(e.hint ?? "nil")' lacks '\(h)'", sourceLocation: sourceLocation)
    }
}

/// A temporary directory removed at the end of `body`.
private func withUnitTempDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unit-config-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

// MARK: - Tests

@Suite("Unit: RegistryLoader")
struct UnitConfigLoaderTests {
    // Line numbers below refer to these documents; keep them in sync.

    @Test func minimalValidConfigLoads() throws {
        let plan = try unitLoad("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: todo0
                kind: mcp_server
                upstream: http://127.0.0.1:5002/mcp
                auth:
                  strategy: none
              - name: github
                kind: application
                upstream: http://127.0.0.1:7000
                auth:
                  strategy: none
            """)
        #expect(plan.connections.count == 2)
        let todo = plan.connections[0]
        #expect(todo.descriptor.name == "todo0")
        #expect(todo.descriptor.kind == .mcpServer)
        #expect(todo.descriptor.route == "/mcp/todo0")
        #expect(todo.descriptor.title == "todo0")
        #expect(todo.descriptor.upstream == "http://127.0.0.1:5002/mcp")
        #expect(todo.descriptor.resourceIndicator == "http://127.0.0.1:5002/mcp")
        #expect(todo.enabled)
        #expect(todo.disabledReason == nil)
        #expect(todo.strategy?.pluginID == "none")
        #expect(plan.connections[1].descriptor.route == "/rest/github")
        #expect(plan.users.audience == "agent0")
    }

    @Test func unknownTopLevelKey() {
        let errors = unitErrors("""
            version: 1
            colour: blue
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections: []
            """)
        expectOneError(
            errors, line: 2, column: 1, message: ["unknown key 'colour'"],
            hint: ["known keys here: agent, connections, gateway, policies, users, version, virtual_servers"])
    }

    @Test func unknownKeyInsideConnectionListsKnownKeys() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: todo0
                kind: mcp_server
                upstrem: http://127.0.0.1:5002/mcp
                auth:
                  strategy: none
            """)
        expectOneError(
            errors, line: 8, column: 5, message: ["unknown key 'upstrem'", "connections[0]"],
            hint: ["known keys here:", "auth", "enabled", "kind", "name", "route", "upstream"])
    }

    @Test func unknownKeyInsideAuthForNoneStrategy() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: todo0
                kind: mcp_server
                upstream: http://127.0.0.1:5002/mcp
                auth:
                  strategy: none
                  token: abc
            """)
        expectOneError(
            errors, line: 11, column: 7,
            message: ["connection 'todo0'", "strategy 'none'", "unknown key 'token'"], hint: ["remove it"])
    }

    @Test func duplicateConnectionNames() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: todo0
                kind: mcp_server
                upstream: http://127.0.0.1:5002/mcp
                auth:
                  strategy: none
              - name: todo0
                kind: mcp_server
                route: /mcp/other
                upstream: http://127.0.0.1:5003/mcp
                auth:
                  strategy: none
            """)
        expectOneError(
            errors, line: 11, column: 11, message: ["duplicate connection name 'todo0'", "first at line 6"],
            hint: ["unique"])
    }

    @Test func duplicateExplicitRoutes() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: a
                kind: application
                route: /rest/shared
                upstream: http://127.0.0.1:7000
                auth:
                  strategy: none
              - name: b
                kind: application
                route: /rest/shared
                upstream: http://127.0.0.1:7001
                auth:
                  strategy: none
            """)
        expectOneError(errors, line: 14, column: 12, message: ["route '/rest/shared' is already used by connection 'a'"])
    }

    @Test func explicitRouteCollidingWithDefaultRoute() {
        // `b` claims /mcp/a explicitly; `a`, declared first, owns it by default.
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: a
                kind: mcp_server
                upstream: http://127.0.0.1:7000
                auth:
                  strategy: none
              - name: b
                kind: mcp_server
                route: /mcp/a
                upstream: http://127.0.0.1:7001
                auth:
                  strategy: none
            """)
        expectOneError(errors, line: 13, column: 12, message: ["route '/mcp/a' is already used by connection 'a'"])
    }

    @Test func unknownKind() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: todo0
                kind: mcp
                upstream: http://127.0.0.1:5002/mcp
                auth:
                  strategy: none
            """)
        expectOneError(
            errors, line: 7, column: 11, message: ["unknown kind 'mcp'", "todo0"],
            hint: ["authorization_server", "application", "mcp_server"])
    }

    @Test func unknownStrategyNamesAvailablePlugins() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: todo0
                kind: mcp_server
                upstream: http://127.0.0.1:5002/mcp
                auth:
                  strategy: jwt-magic
            """)
        expectOneError(
            errors, line: 10, column: 17, message: ["connection 'todo0'", "no auth-strategy plugin named 'jwt-magic'"],
            hint: ["available: idjag, none, oauth-sts"])
    }

    @Test(arguments: [
        ("not a url", "is not a URL"),
        ("ftp://127.0.0.1/files", "must use http or https"),
        ("http://user:pass@127.0.0.1:7000", "must not carry credentials"),
        ("http://127.0.0.1:7000/api?key=1", "must not have a query string"),
    ])
    func badUpstreamURL(upstream: String, problem: String) {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: github
                kind: application
                upstream: \(upstream)
                auth:
                  strategy: none
            """)
        expectOneError(errors, line: 8, column: 15, message: ["connection 'github'", "upstream", "'\(upstream)'", problem])
    }

    @Test func missingEnvironmentVariable() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: github
                kind: application
                upstream: ${GITHUB_API_URL}
                auth:
                  strategy: none
            """, environment: ["OTHER": "x"])
        expectOneError(
            errors, line: 8, column: 15, message: ["environment variable GITHUB_API_URL is not set"],
            hint: ["${GITHUB_API_URL:-default}"])
    }

    private static let interpolated = """
        version: 1
        users:
          issuer: ${ISSUER:-http://127.0.0.1:9000}
          audience: agent0
        connections:
          - name: github
            kind: application
            title: "Costs $$5 and $${NOT_A_VAR}"
            upstream: ${GITHUB_API_URL:-http://127.0.0.1:7000}/v3
            auth:
              strategy: none
        """

    @Test func defaultUsedWhenVariableUnset() throws {
        let plan = try unitLoad(Self.interpolated, environment: [:])
        #expect(plan.users.issuer == "http://127.0.0.1:9000")
        #expect(plan.connections[0].descriptor.upstream == "http://127.0.0.1:7000/v3")
    }

    @Test func defaultUsedWhenVariableEmpty() throws {
        let plan = try unitLoad(Self.interpolated, environment: ["GITHUB_API_URL": ""])
        #expect(plan.connections[0].descriptor.upstream == "http://127.0.0.1:7000/v3")
    }

    @Test func variableValueUsedWhenSet() throws {
        let plan = try unitLoad(
            Self.interpolated, environment: ["GITHUB_API_URL": "https://api.example.com", "ISSUER": "https://idp.example.com"])
        #expect(plan.connections[0].descriptor.upstream == "https://api.example.com/v3")
        #expect(plan.users.issuer == "https://idp.example.com")
    }

    @Test func doubleDollarIsALiteralDollar() throws {
        let plan = try unitLoad(Self.interpolated, environment: ["NOT_A_VAR": "oops"])
        #expect(plan.connections[0].descriptor.title == "Costs $5 and ${NOT_A_VAR}")
    }

    @Test func interpolatedValueCannotChangeStructure() throws {
        // A value with YAML syntax stays one scalar: interpolation runs after parsing.
        let plan = try unitLoad("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: github
                kind: application
                title: ${TITLE}
                upstream: http://127.0.0.1:7000
                auth:
                  strategy: none
            """, environment: ["TITLE": "x\nenabled: false\nroute: /rest/evil"])
        #expect(plan.connections.count == 1)
        #expect(plan.connections[0].descriptor.title == "x\nenabled: false\nroute: /rest/evil")
        #expect(plan.connections[0].enabled)
        #expect(plan.connections[0].descriptor.route == "/rest/github")
    }

    @Test func unterminatedInterpolation() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: github
                kind: application
                title: ${TITLE
                upstream: http://127.0.0.1:7000
                auth:
                  strategy: none
            """, environment: ["TITLE": "GitHub"])
        expectOneError(errors, line: 8, column: 12, message: ["unterminated '${'", "${TITLE"], hint: ["${NAME}"])
    }

    @Test func missingRequiredUsersAudience() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
            connections: []
            """)
        // Reported at the `users` mapping (its first key).
        expectOneError(errors, line: 3, column: 3, message: ["missing required key 'audience'", "users"], hint: ["audience"])
    }

    @Test func unsupportedVersion() {
        let errors = unitErrors("""
            version: 2
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections: []
            """)
        expectOneError(errors, line: 1, column: 10, message: ["unsupported version 2"], hint: ["version: 1"])
    }

    @Test func wrongTypeForBoolean() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: github
                kind: application
                enabled: maybe
                upstream: http://127.0.0.1:7000
                auth:
                  strategy: none
            """)
        expectOneError(errors, line: 8, column: 14, message: ["connections[0].enabled", "expected true or false", "'maybe'"])
    }

    @Test func wrongTypeForVersion() {
        let errors = unitErrors("""
            version: one
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections: []
            """)
        expectOneError(errors, line: 1, column: 10, message: ["version", "expected a whole number", "'one'"])
    }

    @Test func yamlSyntaxErrorCarriesParserPosition() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: @bad
              audience: agent0
            connections: []
            """)
        expectOneError(errors, line: 3, column: 11, message: ["not valid YAML", "cannot start any token"])
    }

    @Test func duplicateKeyInMapping() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
              issuer: http://127.0.0.1:9001
            connections: []
            """)
        #expect(errors.count == 1)
        #expect(errors.first?.message.contains("issuer") == true, "\(errors)")
        // The error points at the second `issuer` (line 5, column 3) and names the first.
        expectOneError(errors, line: 5, column: 3, message: ["duplicate key 'issuer'", "first at line 3"])
    }

    @Test func authorizationServerWithUpstream() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: todo-as
                kind: authorization_server
                issuer: http://127.0.0.1:9000/oauth2/todo
                upstream: http://127.0.0.1:5002
            """)
        expectOneError(errors, line: 9, column: 15, message: ["'upstream' does not apply to an authorization_server"], hint: ["remove it"])
    }

    @Test func authorizationServerWithoutIssuer() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: todo-as
                kind: authorization_server
            """)
        expectOneError(errors, line: 6, column: 11, message: ["connection 'todo-as'", "needs 'issuer'"])
    }

    @Test func mcpServerWithoutAuth() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: todo0
                kind: mcp_server
                upstream: http://127.0.0.1:5002/mcp
            """)
        expectOneError(errors, line: 6, column: 11, message: ["connection 'todo0' needs an 'auth' block"], hint: ["available: idjag, none, oauth-sts"])
    }

    @Test func routePrefixWrongForKind() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: todo0
                kind: mcp_server
                route: /rest/x
                upstream: http://127.0.0.1:5002/mcp
                auth:
                  strategy: none
            """)
        expectOneError(errors, line: 8, column: 12, message: ["route '/rest/x'", "'/mcp/<segment>'", "mcp_server"])
    }

    private static let threeKinds = """
        version: 1
        users:
          issuer: http://127.0.0.1:9000
          audience: agent0
        connections:
          - name: todo-as
            kind: authorization_server
            issuer: http://127.0.0.1:9000/oauth2/todo
          - name: todo0
            kind: mcp_server
            upstream: http://127.0.0.1:5002/mcp
            auth:
              strategy: none
          - name: github
            kind: application
            upstream: http://127.0.0.1:7000
            auth:
              strategy: none
        """

    @Test func disabledConnectionsByName() throws {
        let plan = try unitLoad(Self.threeKinds, environment: ["DISABLED_CONNECTIONS": "github"])
        #expect(plan.connections.map(\.descriptor.name) == ["todo-as", "todo0", "github"])
        #expect(plan.connections.map(\.enabled) == [true, true, false])
        #expect(plan.connections[2].disabledReason == "disabled by DISABLED_CONNECTIONS (name)")
        #expect(plan.connections[1].disabledReason == nil)
    }

    @Test func disabledConnectionsByKind() throws {
        let plan = try unitLoad(Self.threeKinds, environment: ["DISABLED_CONNECTIONS": " mcp_server , authorization_server"])
        #expect(plan.connections.map(\.enabled) == [false, false, true])
        #expect(plan.connections[0].disabledReason == "disabled by DISABLED_CONNECTIONS (kind authorization_server)")
        #expect(plan.connections[1].disabledReason == "disabled by DISABLED_CONNECTIONS (kind mcp_server)")
        #expect(plan.connections[2].disabledReason == nil)
    }

    @Test func disabledConnectionsIsEmptyByDefault() throws {
        let plan = try unitLoad(Self.threeKinds, environment: [:])
        #expect(plan.connections.allSatisfy { $0.enabled })
    }

    @Test func enabledFalseDisablesTheConnection() throws {
        let plan = try unitLoad("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: github
                kind: application
                enabled: false
                upstream: http://127.0.0.1:7000
                auth:
                  strategy: none
              - name: other
                kind: application
                enabled: true
                upstream: http://127.0.0.1:7001
                auth:
                  strategy: none
            """)
        #expect(plan.connections[0].enabled == false)
        #expect(plan.connections[0].disabledReason == "disabled in config")
        #expect(plan.connections[1].enabled == true)
        #expect(plan.connections[1].disabledReason == nil)
    }

    @Test func severalErrorsReportedTogether() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: github
                kind: application
                upstream: ftp://127.0.0.1/x
                auth:
                  strategy: none
              - name: github
                kind: application
                route: /rest/github2
                upstream: http://127.0.0.1:7001
                auth:
                  strategy: nope
            """)
        #expect(errors.count == 3, "\(errors)")
        guard errors.count == 3 else { return }
        let byLine = errors.sorted { ($0.location?.line ?? 0) < ($1.location?.line ?? 0) }
        expectError(byLine[0], line: 8, column: 15, message: ["must use http or https"])
        expectError(byLine[1], line: 11, column: 11, message: ["duplicate connection name 'github'"])
        expectError(byLine[2], line: 16, column: 17, message: ["no auth-strategy plugin named 'nope'"])
        // The aggregate description lists each one as file:line:column.
        let text = ConfigErrors(errors).description
        #expect(text.contains("connections.yaml:8:15: error:"))
        #expect(text.contains("connections.yaml:11:11: error:"))
        #expect(text.contains("connections.yaml:16:17: error:"))
    }

    @Test func fileSecretReadRelativeToBaseDirectoryAndRedacted() throws {
        try withUnitTempDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/keys", withIntermediateDirectories: true)
            // Not a key: any multi-line secret text (a real key would be generated at run time).
            let pem = "line one of a secret\nMIIEsecretmaterial\nlast line of a secret"
            try (pem + "\n\n").write(toFile: dir + "/keys/agent.pem", atomically: true, encoding: .utf8)
            let plan = try unitLoad("""
                version: 1
                agent:
                  id: agent0
                  key_id: k1
                  private_key: file:keys/agent.pem
                users:
                  issuer: http://127.0.0.1:9000
                  audience: agent0
                connections: []
                """, baseDirectory: dir)
            let agent = try #require(plan.agent)
            #expect(agent.id == "agent0")
            #expect(agent.keyID == "k1")
            let key = try #require(agent.privateKey)
            #expect(key.reveal() == pem)  // trailing newlines stripped
            #expect(key.source == "file:\(dir)/keys/agent.pem")
            #expect(key.description == "<redacted>")
            #expect("\(key)" == "<redacted>")
            #expect(String(reflecting: key) == "<redacted>")
            #expect(!String(describing: agent).contains("secretmaterial"))
            #expect(!String(reflecting: plan.agent as Any).contains("secretmaterial"))
        }
    }

    @Test func inlineSecretIsKeptAndRedacted() throws {
        let plan = try unitLoad("""
            version: 1
            agent:
              id: agent0
              key_id: k1
              private_key: inline-secret-value
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections: []
            """)
        #expect(plan.agent?.privateKey?.reveal() == "inline-secret-value")
        #expect(plan.agent?.privateKey?.source == "inline")
        #expect(plan.agent?.privateKey?.description == "<redacted>")
    }

    @Test func missingFileSecretIsAnErrorAtItsLine() throws {
        try withUnitTempDirectory { dir in
            let errors = unitErrors("""
                version: 1
                agent:
                  id: agent0
                  key_id: k1
                  private_key: file:missing.pem
                users:
                  issuer: http://127.0.0.1:9000
                  audience: agent0
                connections: []
                """, baseDirectory: dir)
            expectOneError(
                errors, line: 5, column: 16, message: ["agent.private_key", "cannot read secret file '\(dir)/missing.pem'"])
        }
    }

    @Test func shippedConnectionsYAMLValidates() throws {
        // Tests/GatewayTests/UnitConfigLoaderTests.swift → repository root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = root.appendingPathComponent("connections.yaml").path
        // The shipped file reads the agent key from AGENT_KEY_FILE (default .switchboard/…,
        // created by `switchboard dev`): give it a real key file.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("shipped-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keyFile = dir + "/agent.pem"
        try SigningKey.generateRSA(kid: "k").pemRepresentation.write(toFile: keyFile, atomically: true, encoding: .utf8)
        let plan: RegistryPlan
        do {
            plan = try RegistryLoader(plugins: StandardPlugins.registry(), environment: ["AGENT_KEY_FILE": keyFile]).load(path: path)
        } catch {
            Issue.record("shipped connections.yaml does not validate:\n\(error)")
            return
        }
        #expect(plan.file == path)
        #expect(plan.connections.map(\.descriptor.name) == ["todo-mcp-as", "todo0", "github", "github-mcp"])
        #expect(plan.connections.map(\.descriptor.kind) == [.authorizationServer, .mcpServer, .application, .mcpServer])
        #expect(plan.connections.map { $0.strategy?.pluginID } == [nil, "idjag", "oauth-sts", "oauth-sts"])
        #expect(plan.agent?.privateKey?.source == "file:" + keyFile)
        #expect(plan.connections[1].descriptor.route == "/mcp/todo0")
        #expect(plan.connections[2].descriptor.route == "/rest/github")
        #expect(plan.connections.allSatisfy { $0.enabled })
        #expect(plan.users.issuer == "http://127.0.0.1:9000")
        #expect(plan.users.audience == "agent0")
    }

    @Test func loadPathOfMissingFile() {
        do {
            _ = try RegistryLoader(plugins: StandardPlugins.registry(), environment: [:]).load(path: "/nonexistent/connections.yaml")
            Issue.record("expected an error")
        } catch {
            #expect(error.errors.count == 1)
            #expect(error.errors.first?.message == "no such file")
            #expect(error.errors.first?.location == nil)
        }
    }
}

// MARK: - virtual_servers and the /mcp endpoint's names

@Suite("Unit: RegistryLoader, virtual servers")
struct UnitVirtualServerConfigTests {
    /// One MCP connection (`todo0`), then `tail` at the top level (its first line is line 11).
    static func yaml(_ tail: String) -> String {
        """
        version: 1
        users:
          issuer: http://127.0.0.1:9000
          audience: agent0
        connections:
          - name: todo0
            kind: mcp_server
            upstream: http://127.0.0.1:5002/mcp
            auth:
              strategy: none
        \(tail)
        """
    }

    @Test func virtualServersLoadWithTheirGlobs() throws {
        let plan = try unitLoad(Self.yaml("""
            virtual_servers:
              - name: reader
                title: Read only
                include: ["todo0__get-*", "weather__*"]
                exclude: ["todo0__get-secret"]
            """))
        let server = try #require(plan.virtualServers.first)
        #expect(plan.virtualServers.count == 1 && server.name == "reader" && server.title == "Read only")
        #expect(server.includes("todo0__get-todos") && !server.includes("todo0__get-secret") && !server.includes("todo0__create-todo"))
        // `weather__*` names no connection yet: allowed (it may be added), but said.
        #expect(plan.warnings.count == 1 && plan.warnings[0].contains("weather__*") && plan.warnings[0].contains("connections.yaml:14:"), "\(plan.warnings)")
    }

    @Test func aBadGlobIsAnErrorAtItsLineAndColumn() {
        let errors = unitErrors(Self.yaml("""
            virtual_servers:
              - name: reader
                include:
                  - todo0__ok
                  - todo0__[abc
            """))
        expectOneError(errors, line: 15, column: 9, message: ["virtual server 'reader'", "never closed"])
    }

    @Test func duplicateOrInvalidNamesAndEmptyIncludesAreErrors() {
        let errors = unitErrors(Self.yaml("""
            virtual_servers:
              - name: reader
                include: ["todo0__*"]
              - name: reader
                include: ["todo0__*"]
              - name: Bad Name
                include: ["todo0__*"]
              - name: empty
                include: []
            """))
        #expect(errors.count == 3, "\(errors)")
        #expect(errors.contains { $0.message.contains("defined twice") && $0.location?.line == 14 })
        #expect(errors.contains { $0.message.contains("'Bad Name' is invalid") && $0.location?.line == 16 })
        #expect(errors.contains { $0.message.contains("includes nothing") && $0.location?.line == 19 })
    }

    @Test func connectionNamesMayNotContainTheSeparatorNorTakeTheVirtualRoute() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: a__b
                kind: mcp_server
                upstream: http://127.0.0.1:5002/mcp
                auth: { strategy: none }
              - name: v
                kind: mcp_server
                upstream: http://127.0.0.1:5003/mcp
                auth: { strategy: none }
            """)
        #expect(errors.count == 2, "\(errors)")
        #expect(errors.contains { $0.message.contains("contains '__'") && $0.location?.line == 6 })
        #expect(errors.contains { $0.message.contains("'/mcp/v' is the gateway's own") && $0.location?.line == 10 })
    }
}

// MARK: - policies

@Suite("Unit: RegistryLoader, policies")
struct UnitPolicyConfigTests {
    /// `todo0` (MCP) with `policy` (indented under it) and `github` (REST), then `tail` at the top level.
    static func yaml(policy: String = "", tail: String = "") -> String {
        """
        version: 1
        users:
          issuer: http://127.0.0.1:9000
          audience: agent0
        connections:
          - name: todo0
            kind: mcp_server
            upstream: http://127.0.0.1:5002/mcp
            auth: { strategy: none }
        \(policy)
          - name: github
            kind: application
            upstream: http://127.0.0.1:7000
            auth: { strategy: none }
        \(tail)
        """
    }

    static func facts(_ connection: String, tool: String? = nil, arguments: JSONValue? = nil, rest: (String, String)? = nil, groups: [String] = []) -> CallFacts {
        var f = CallFacts(connection: connection, claims: ["sub": ["u1"], "groups": groups, "email": ["bob@example.test"]])
        if let rest { f.rest = rest } else { f.mcp = .init(method: tool == nil ? "tools/list" : "tools/call", tool: tool, arguments: arguments) }
        return f
    }

    @Test func rulesLoadAndDecideFirstMatchThenTheDefault() throws {
        let plan = try unitLoad(Self.yaml(policy: """
                policy:
                  default: deny
                  rules:
                    - name: readers
                      allow: { tool: "get-*" }
                    - name: admins-manage
                      allow:
                        tool: "*-todo"
                        claims: { groups: { contains: admins } }
            """, tail: """
            policies:
              - name: acme-only
                deny:
                  connection: "todo*"
                  tool: create-todo
                  arguments: { /owner: { not_equals: acme } }
              - name: no-bob-rest
                deny:
                  rest_method: GET
                  path: /user/*
                  claims: { email: { regex: "bob@.*" } }
            """))
        let todo = try #require(plan.connections.first { $0.descriptor.name == "todo0" })
        let github = try #require(plan.connections.first { $0.descriptor.name == "github" })
        func decide(_ f: CallFacts, _ c: RegistryPlan.PlannedConnection, listing: Bool = false) -> PolicyDecision {
            CompiledPolicy(global: plan.policies, connection: c.policy, name: c.descriptor.name).map { Policy.decide(f, $0, listing: listing) } ?? .allow
        }
        #expect(decide(Self.facts("todo0", tool: "get-todos"), todo) == .allow)
        #expect(decide(Self.facts("todo0", tool: "delete-todo"), todo) == .deny(rule: nil), "no rule allows it: the default")
        #expect(decide(Self.facts("todo0", tool: "delete-todo", groups: ["admins"]), todo) == .allow)
        #expect(decide(Self.facts("todo0", tool: "create-todo", arguments: ["owner": "other"], groups: ["admins"]), todo) == .deny(rule: "acme-only"),
                "the top-level rules come first")
        #expect(decide(Self.facts("todo0", tool: "create-todo", arguments: ["owner": "acme"], groups: ["admins"]), todo) == .allow)
        #expect(decide(Self.facts("github", rest: ("GET", "/user/repos")), github) == .deny(rule: "no-bob-rest"))
        #expect(decide(Self.facts("github", rest: ("POST", "/user/repos")), github) == .allow)
        #expect(CompiledPolicy(global: plan.policies, connection: github.policy, name: "github") != nil, "a top-level rule applies to it")
        // Listing: rules on arguments are passed over (create-todo may be called for acme).
        #expect(decide(Self.facts("todo0", tool: "create-todo", groups: ["admins"]), todo, listing: true) == .allow)
    }

    @Test(arguments: [
        ("        - name: r\n          deny: { claims: { email: { regex: \"([a-z\" } } }", 13, 45, "not a valid regular expression"),
        ("        - name: r\n          deny: { claims: { email: { like: x } } }", 13, 38, "unknown operator 'like'"),
        ("        - name: r\n          deny: { tool: \"[abc\" }", 13, 25, "never closed"),
        ("        - name: r\n          deny: { tool: x, rest_method: GET }", 12, 11, "can never match"),
        ("        - name: r\n          deny: { path: /x }", 12, 11, "REST conditions on a connection of kind mcp_server"),
        ("        - name: r\n          deny: { arguments: { owner: x } }", 13, 32, "is not a JSON pointer"),
        ("        - name: r\n          deny: { claims: { groups: { in: [] } } }", 13, 43, "can never match anything"),
        ("        - name: r\n          deny: { connection: x }", 13, 19, "cannot name connections"),
        ("        - deny: {}", 12, 11, "needs a 'name'"),
    ])
    func badRulesAreErrorsAtTheirLineAndColumn(_ rule: String, _ line: Int, _ column: Int, _ message: String) {
        let errors = unitErrors(Self.yaml(policy: "    policy:\n      rules:\n" + rule))
        #expect(errors.count == 1, "\(errors)")
        #expect(errors.first?.location?.line == line && errors.first?.location?.column == column, "\(errors)")
        #expect(errors.first?.message.contains(message) == true, "\(errors)")
    }

    @Test func aTopLevelRuleForNoConnectionIsAWarning() throws {
        let plan = try unitLoad(Self.yaml(tail: "policies:\n  - name: r\n    deny: { connection: weather }"))
        #expect(plan.warnings.count == 1 && plan.warnings[0].contains("'weather' matches no connection"), "\(plan.warnings)")
    }
}

// MARK: - rate limits

@Suite("Unit: rate limits (GCRA) and their configuration")
struct UnitRateLimitTests {
    static let limit = RateLimit(name: "reads", requests: 3, interval: .seconds(60), burst: 3)

    @Test func aBurstGetsExactlyItsSizeThenOneEveryEmissionInterval() {
        let limiter = RateLimiter()
        var outcomes: [Bool] = []
        for _ in 0..<5 {
            if case .success = limiter.take(Self.limit, key: .init(limit: "u"), now: 1000) { outcomes.append(true) } else { outcomes.append(false) }
        }
        #expect(outcomes == [true, true, true, false, false])
        guard case .failure(let refusal) = limiter.take(Self.limit, key: .init(limit: "u"), now: 1000) else {
            Issue.record("a fourth call at once must be refused")
            return
        }
        #expect(abs(refusal.retryAfter - 20) < 0.001 && refusal.words == "3 per minute", "\(refusal)")
        if case .failure = limiter.take(Self.limit, key: .init(limit: "u"), now: 1019.9) { } else { Issue.record("not yet: 20 s after") }
        if case .success(let a) = limiter.take(Self.limit, key: .init(limit: "u"), now: 1020) { #expect(a.remaining == 0) } else { Issue.record("20 s later one more") }
        if case .success(let a) = limiter.take(Self.limit, key: .init(limit: "other"), now: 1020) { #expect(a.remaining == 2 && a.limit == 3) } else { Issue.record("another key has its own bucket") }
        // After a long pause the bucket is full again, not more than full.
        let after = (0..<4).map { _ -> Bool in if case .success = limiter.take(Self.limit, key: .init(limit: "u"), now: 5000) { return true } else { return false } }
        #expect(after == [true, true, true, false])
    }

    /// A fresh bucket always admits its first call, whatever the clock reads: with a burst of 1,
    /// `(now + t) - t` in Double seconds could land one ulp above `now` and refuse it "for 1 s"
    /// (seen in the browser suite with `1 per hour`).
    @Test func aFreshBucketAdmitsItsFirstCallAtAnyInstant() {
        let hourly = RateLimit(name: "hourly", requests: 1, interval: .seconds(3600), burst: 1)
        let limiter = RateLimiter()
        var refused: [Double] = []
        var now = -0.000_001_234_567
        for i in 0..<20_000 {
            now += 0.000_013_7 * Double(i % 97 + 1)
            if case .failure = limiter.take(hourly, key: .init(limit: "k\(i)"), now: now) { refused.append(now) }
        }
        #expect(refused.isEmpty, "first calls refused at \(refused.prefix(5))")
        // …and the second call of a bucket waits the whole interval.
        _ = limiter.take(hourly, key: .init(limit: "again"), now: 10)
        guard case .failure(let r) = limiter.take(hourly, key: .init(limit: "again"), now: 10.5) else {
            Issue.record("a second call within the hour must be refused")
            return
        }
        #expect(abs(r.retryAfter - 3599.5) < 0.001, "\(r)")
    }

    /// A full table forgets only buckets that are full again: a caller over its limit stays
    /// refused however many other keys arrive.
    @Test func aFullTableForgetsOnlyBucketsThatAreFullAgain() {
        let limiter = RateLimiter(capacity: 4)
        for _ in 0..<3 { _ = limiter.take(Self.limit, key: .init(limit: "busy"), now: 1000) }
        for i in 0..<10 { _ = limiter.take(Self.limit, key: .init(limit: "k\(i)"), now: 1000 + Double(i) / 2) }
        // The table filled (it prunes at each new key); the busy bucket, due again at 1020, was kept.
        if case .success = limiter.take(Self.limit, key: .init(limit: "busy"), now: 1010) { Issue.record("the busy bucket was forgotten") }
        if case .failure = limiter.take(Self.limit, key: .init(limit: "busy"), now: 1020) { Issue.record("20 s later one more") }
        // An hour on, every bucket is full again: the next new key finds the table full and empties it.
        _ = limiter.take(Self.limit, key: .init(limit: "late"), now: 5000)
        #expect(limiter.bucketCount == 1, "\(limiter.bucketCount) buckets kept")
    }

    /// The caller's side of the gateway is always timed (issue 20): nginx-like defaults, no
    /// zero, and the keys are gateway-wide (a per-connection one is an error, not ignored).
    @Test func inboundTimeoutsAndConnectionCap() throws {
        let defaults = try unitLoad("""
            version: 1
            users: { issuer: "http://127.0.0.1:9000", audience: agent0 }
            connections: []
            """).settings
        #expect(defaults.clientHeaderTimeout == .seconds(60) && defaults.clientBodyTimeout == .seconds(60))
        #expect(defaults.keepaliveTimeout == .seconds(75) && defaults.maxInboundConnections == 10_000)
        let set = try unitLoad("""
            version: 1
            users: { issuer: "http://127.0.0.1:9000", audience: agent0 }
            gateway:
              limits: { max_inbound_connections: 7 }
              timeouts: { client_header: 2s, client_body: 3s, keepalive: 4s }
            connections: []
            """).settings
        #expect(set.clientHeaderTimeout == .seconds(2) && set.clientBodyTimeout == .seconds(3))
        #expect(set.keepaliveTimeout == .seconds(4) && set.maxInboundConnections == 7)
        let errors = unitErrors("""
            version: 1
            users: { issuer: "http://127.0.0.1:9000", audience: agent0 }
            gateway:
              limits: { max_inbound_connections: 0 }
              timeouts:
                client_header: 0s
                keepalive: 0ms
            connections:
              - name: github
                kind: application
                upstream: http://127.0.0.1:7000
                auth: { strategy: none }
                timeouts: { keepalive: 5s }
            """)
        #expect(errors.count == 4, "\(errors)")
        #expect(errors.contains { $0.message.contains("must be at least 1") && $0.location?.line == 4 })
        #expect(errors.contains { $0.message.contains("must be more than 0") && $0.location?.line == 6 })
        #expect(errors.contains { $0.message.contains("must be more than 0") && $0.location?.line == 7 })
        #expect(errors.contains { $0.message.contains("only 'timeouts.response'") && $0.location?.line == 13 })
        // Found by fuzzing (Fuzz/crashes/config-crash-f358…): a duration past Int64 milliseconds trapped the loader.
        for absurd in ["1888888888888888888888888888888888888888888888888880s", "1e300ms", "inf", "36501d"] {
            let huge = unitErrors("""
                version: 1
                users: { issuer: "http://127.0.0.1:9000", audience: agent0 }
                gateway: { timeouts: { keepalive: "\(absurd)" } }
                connections: []
                """)
            #expect(huge.count == 1 && huge.first?.message.contains("is not a duration") == true, "\(absurd): \(huge)")
        }
    }

    @Test func badLimitsAreErrorsAtTheirLineAndColumn() {
        let errors = unitErrors("""
            version: 1
            users:
              issuer: http://127.0.0.1:9000
              audience: agent0
            connections:
              - name: github
                kind: application
                upstream: http://127.0.0.1:7000
                auth: { strategy: none }
                rate_limits:
                  - { name: a, requests: 0, per: 1m }
                  - { name: b, requests: 2, per: 1m, tool: "x" }
                  - { name: c, requests: 2, per: 1m, key: [user, colour] }
            """)
        #expect(errors.count == 3, "\(errors)")
        #expect(errors.contains { $0.message.contains("'requests' must be at least 1") && $0.location?.line == 11 })
        #expect(errors.contains { $0.message.contains("only an MCP connection's calls have a tool") && $0.location?.line == 12 })
        #expect(errors.contains { $0.message.contains("unknown key part 'colour'") && $0.location?.line == 13 })
    }
}
