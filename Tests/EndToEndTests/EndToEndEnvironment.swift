import Foundation
import Gateway
import Hummingbird
import IdentityProvider
import ISVStandIn
import Logging
import OAuthCore
import StandardPlugins
import SwitchboardTesting
import SystemTesting
import Todo0

/// The whole system on loopback ports, in one fresh temp directory:
///
/// - the identity provider (behind ``IdPFront``, whose URL is the IdP's issuer, so token
///   requests can be counted), with the agent `wlp-dev-agent0` registered by `initializeAgent`
///   and its private key written into the temp directory;
/// - todo0 (MCP + REST) trusting `<issuer>/oauth2/todo-mcp` for resource `http://127.0.0.1:5002/mcp`;
/// - the ISV stand-in (GitHub REST subset + MCP) trusting the IdP's STS tokens for audience
///   `http://127.0.0.1:7000` (`…/mcp` for MCP);
/// - a recording MCP upstream and a token endpoint that answers garbage;
/// - the gateway, loading a connections.yaml modelled on the shipped one with the real ports.
final class EndToEnd: Sendable {
    static let agentID = "wlp-dev-agent0"
    static let agentKeyID = "dev-agent0-key"
    /// The IdP's registered resource for todo-mcp (todo0 itself listens elsewhere).
    static let todoResource = "http://127.0.0.1:5002/mcp"
    /// The audience the IdP's development config issues GitHub STS tokens for.
    static let isvAudience = "http://127.0.0.1:7000"
    static let webClientID = "agent0"
    static let passwords = ["alice": "alice-dev-password", "bob": "bob-dev-password"]

    /// Choices a test can make before the system starts.
    struct Options: Sendable {
        /// Lifetime (seconds) of the GitHub STS tokens the IdP issues; nil keeps the default (1 h).
        var githubTokenLifetime: Int?
    }

    let directory: String
    let front: IdPFront
    let idpServer: RunningServer
    let todo0: Todo0Service
    let isvServer: RunningServer
    let recorder: RecordingUpstream
    let garbage: ScriptedUpstream
    let gatewayServer: RunningServer
    let configPath: String
    let agentKeyPath: String
    let agentKey: SigningKey

    /// The IdP's issuer: the URL of the counting front.
    var issuer: String { front.baseURL }
    var gatewayURL: String { gatewayServer.baseURL }
    var todoAuthorizationServer: String { issuer + "/oauth2/todo-mcp" }
    var tokenEndpoint: String { issuer + "/oauth2/v1/token" }

    private init(
        directory: String, front: IdPFront, idpServer: RunningServer, todo0: Todo0Service, isvServer: RunningServer,
        recorder: RecordingUpstream, garbage: ScriptedUpstream, gatewayServer: RunningServer, configPath: String, agentKeyPath: String, agentKey: SigningKey
    ) {
        self.directory = directory
        self.front = front
        self.idpServer = idpServer
        self.todo0 = todo0
        self.isvServer = isvServer
        self.recorder = recorder
        self.garbage = garbage
        self.gatewayServer = gatewayServer
        self.configPath = configPath
        self.agentKeyPath = agentKeyPath
        self.agentKey = agentKey
    }

    static func quietLogger(_ label: String) -> Logger { .quiet(label, levelFrom: "E2E_LOG") }

    static func start(_ options: Options = Options()) async throws -> EndToEnd {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-e2e-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)

        // 1. The counting front first: its URL becomes the IdP's issuer.
        let front = try await IdPFront.start()

        // 2. The IdP (port 0, issuer = the front), with the agent's key registered.
        var idpOptions = IdentityProviderOptions()
        idpOptions.port = 0
        idpOptions.issuer = front.baseURL
        idpOptions.dataDirectory = dir + "/idp"
        idpOptions.logger = quietLogger("e2e-idp")
        if let lifetime = options.githubTokenLifetime {
            var config = IdPConfig.developmentDefaults
            for i in config.thirdPartyApps.indices where config.thirdPartyApps[i].id == "github" { config.thirdPartyApps[i].tokenLifetime = lifetime }
            let path = dir + "/idp.yaml"
            try JSONEncoder().encode(config).write(to: URL(fileURLWithPath: path))  // JSON is YAML
            idpOptions.configPath = path
        }
        let agentKeyPath = dir + "/agent0-private-key.pem"
        _ = try await initializeAgent(options: idpOptions, agentID: agentID, keyID: agentKeyID, privateKeyPath: agentKeyPath)
        let agentKey = try SigningKey(pem: try String(contentsOfFile: agentKeyPath, encoding: .utf8), kid: agentKeyID)
        let idpServer = try await IdentityProviderService.start(idpOptions)
        front.setBackend(idpServer.baseURL)

        // 3. todo0, trusting the todo-mcp AS for the IdP's registered resource.
        var todoOptions = Todo0Options()
        todoOptions.mcpPort = 0
        todoOptions.restPort = 0
        todoOptions.dataDirectory = dir + "/todo0"
        todoOptions.authorizationServer = front.baseURL + "/oauth2/todo-mcp"
        todoOptions.resource = todoResource
        todoOptions.logger = quietLogger("e2e-todo0")
        let todo0 = try await Todo0Service.start(todoOptions)

        // 4. The ISV stand-in.
        var isvOptions = ISVOptions()
        isvOptions.port = 0
        isvOptions.dataDirectory = dir + "/isv"
        isvOptions.identityProvider = front.baseURL
        isvOptions.audience = isvAudience
        isvOptions.logger = quietLogger("e2e-isv")
        let (isvPorts, isvContinuation) = AsyncStream.makeStream(of: Int.self)
        isvOptions.onServerRunning = { isvContinuation.yield($0) }
        let isvApp = try await buildISVApplication(isvOptions)
        let isvServer = try await TestHTTPServer.run(isvApp, ports: isvPorts)

        // 5. Extra upstreams for what the agent can't see: injected headers, a broken IdP.
        let recorder = try await RecordingUpstream.start()
        let garbage = try await GarbageTokenEndpoint.start()

        // 6. The gateway.
        let configPath = dir + "/connections.yaml"
        let yaml = connectionsYAML(
            issuer: front.baseURL, keyPath: agentKeyPath, todo0: todo0.mcpPort, isv: isvServer.port, recorder: recorder.baseURL,
            garbage: garbage.baseURL)
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        let gatewayServer = try await startGateway(configPath: configPath)
        return EndToEnd(
            directory: dir, front: front, idpServer: idpServer, todo0: todo0, isvServer: isvServer, recorder: recorder,
            garbage: garbage, gatewayServer: gatewayServer, configPath: configPath, agentKeyPath: agentKeyPath, agentKey: agentKey)
    }

    /// Builds and starts a gateway on a free port for `configPath` (throws what `buildGatewayApplication` throws).
    /// `fastPath`: ``GatewayOptions/fastPath`` (false: every call takes the async path).
    /// `log`: receives the gateway's lines at info level (its access log names the driver of each call).
    static func startGateway(configPath: String, fastPath: Bool = true, log: AccessLog? = nil) async throws -> RunningServer {
        var options = GatewayOptions(configPath: configPath, plugins: StandardPlugins.registry())
        options.fastPath = fastPath
        options.port = 0
        options.environment = [:]
        options.handleSIGHUP = false
        options.logger = log?.logger(label: "e2e-gateway") ?? quietLogger("e2e-gateway")
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        options.onServerRunning = { continuation.yield($0) }
        let app = try await buildGatewayApplication(options)
        return try await TestHTTPServer.run(app, ports: ports)
    }

    /// The registry: the shipped connections.yaml with the real ports, plus `recorder` (idjag into
    /// the recording upstream) and `garbage` (idjag whose org token endpoint answers non-JSON).
    static func connectionsYAML(issuer: String, keyPath: String, todo0: Int, isv: Int, recorder: String, garbage: String) -> String {
        """
        version: 1

        gateway:
          reload:
            interval: 100ms

        agent:
          id: \(agentID)
          private_key: file:\(keyPath)
          key_id: \(agentKeyID)

        users:
          issuer: \(issuer)
          audience: \(webClientID)

        connections:
          - name: todo-mcp-as
            kind: authorization_server
            title: Todo MCP Authorization Server
            issuer: \(issuer)/oauth2/todo-mcp

        \(idjagConnection("todo0", title: "Todo0 MCP Server", upstream: "http://127.0.0.1:\(todo0)/mcp"))
          - name: github
            kind: application
            title: GitHub
            upstream: http://127.0.0.1:\(isv)
            auth:
              strategy: oauth-sts
              resource: orn:dev:idp:github

          - name: github-mcp
            kind: mcp_server
            title: GitHub MCP Server
            upstream: http://127.0.0.1:\(isv)/mcp
            auth:
              strategy: oauth-sts
              resource: orn:dev:idp:github-mcp

        \(idjagConnection("recorder", title: "Recording upstream", upstream: recorder + "/mcp"))
        \(idjagConnection("scoped", title: "Tool-result scope challenges", upstream: recorder + "/scoped"))
        \(idjagConnection("garbage", title: "Broken token endpoint", upstream: recorder + "/mcp", tokenEndpoint: garbage + "/token"))
        """
    }

    /// A connections.yaml entry (ending in a newline): MCP server `name` at `upstream` for
    /// ``todoResource``, `idjag` through `todo-mcp-as`, optionally at another token endpoint.
    static func idjagConnection(_ name: String, title: String? = nil, upstream: String, tokenEndpoint: String? = nil) -> String {
        var lines = ["  - name: \(name)", "    kind: mcp_server"]
        if let title { lines.append("    title: \(title)") }
        lines += [
            "    upstream: \(upstream)", "    resource: \(todoResource)", "    auth:", "      strategy: idjag", "      authorization_server: todo-mcp-as",
            "      scopes: [mcp:connect, mcp:tools:read]",
        ]
        if let tokenEndpoint { lines.append("      token_endpoint: \(tokenEndpoint)") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// This environment's connections.yaml, with the agent key at `keyPath`.
    func connectionsYAML(keyPath: String) -> String {
        Self.connectionsYAML(issuer: issuer, keyPath: keyPath, todo0: todo0.mcpPort, isv: isvServer.port, recorder: recorder.baseURL, garbage: garbage.baseURL)
    }

    /// Takes the identity provider off the network (the front and the IdP itself).
    func stopIdP() async {
        await front.server.stop()
        await idpServer.stop()
    }

    func stop() async {
        await gatewayServer.stop()
        await isvServer.stop()
        await todo0.stop()
        await recorder.server.stop()
        await garbage.stop()
        await stopIdP()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Runs `body` with a fresh system and stops it afterwards, whatever happens.
func withEndToEnd(_ options: EndToEnd.Options = .init(), _ body: (EndToEnd) async throws -> Void) async throws {
    let env = try await EndToEnd.start(options)
    try await withCleanup({ try await body(env) }, cleanup: { await env.stop() })
}
