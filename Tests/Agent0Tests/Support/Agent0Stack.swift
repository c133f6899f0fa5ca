import Agent0
import Foundation
import Gateway
import IdentityProvider
import Logging
import StandardPlugins
import SwitchboardJSON
import SwitchboardTesting
import SystemTesting
import Todo0

/// agent0 and everything it talks to, on loopback ports in one fresh temp directory:
///
/// - the users' OIDC provider: the real development IdP (behind a ``ForwardingFront`` whose
///   URL is the issuer, so agent0 and the IdP can each learn the other's URL), or a
///   ``StandInOIDCProvider`` told how to misbehave;
/// - the real gateway, trusting that issuer's ID tokens for audience `agent0`, with one `none`
///   connection per ``MCPStandIn`` and, when asked, the real todo0 behind `idjag`;
/// - the scripted model (``ScriptedLLM``);
/// - agent0 itself, on port 0 (its public URL follows the bound port unless one is given).
final class Agent0Stack: Sendable {
    struct Options: Sendable {
        enum Identity: Sendable {
            case developmentIdP
            case standIn(StandInOIDCProvider.Behaviour)
        }

        var identity: Identity = .developmentIdP
        /// agent0's public URL (a TLS-terminating proxy in front of it); nil: its own http URL.
        var publicURL: String?
        var mcp: [MCPStandIn.Spec] = []
        /// The real todo0 behind `idjag` (needs the development IdP: its authorization server issues todo0's tokens).
        var todo0 = false
        var llm: ScriptedLLM.Script = { _, _ in ScriptedLLM.text("Hello from the scripted model.") }
        var maxRounds: Int?
        var loginTimeout: Duration?
    }

    static let agentID = "wlp-dev-agent0"
    static let agentKeyID = "dev-agent0-key"
    static let sessionCookie = "agent0_session"
    static let loginCookie = "agent0_login"
    /// todo0's resource indicator as the development IdP registers it (an identifier: todo0
    /// itself listens on a free port).
    static let todoResource = IdPConfig.developmentDefaults.authorizationServers[0].resources[0]

    let options: Options
    let directory: String
    let issuer: String
    let llm: ScriptedLLM
    let standIn: StandInOIDCProvider?
    let mcp: [String: MCPStandIn]
    let gateway: RunningServer
    let agent0: RunningServer
    /// What started, stopped in reverse order.
    private let stops: [@Sendable () async -> Void]

    /// Where agent0 listens (`http://127.0.0.1:<port>`).
    var baseURL: String { agent0.baseURL }
    /// The URL a browser knows agent0 by.
    var publicURL: String { options.publicURL ?? agent0.baseURL }
    func url(_ path: String) -> String { baseURL + path }

    private init(
        options: Options, directory: String, issuer: String, llm: ScriptedLLM, standIn: StandInOIDCProvider?, mcp: [String: MCPStandIn],
        gateway: RunningServer, agent0: RunningServer, stops: [@Sendable () async -> Void]
    ) {
        self.options = options
        self.directory = directory
        self.issuer = issuer
        self.llm = llm
        self.standIn = standIn
        self.mcp = mcp
        self.gateway = gateway
        self.agent0 = agent0
        self.stops = stops
    }

    static func logger(_ label: String) -> Logger { .quiet(label, levelFrom: "AGENT0_TEST_LOG") }

    static func start(_ options: Options) async throws -> Agent0Stack {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("agent0-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var stops: [@Sendable () async -> Void] = [{ try? FileManager.default.removeItem(atPath: dir) }]
        func stopAll() async {
            for stop in stops.reversed() { await stop() }
        }
        do {
            let llm = try await ScriptedLLM.start(options.llm)
            stops.append { await llm.stop() }
            var mcp: [String: MCPStandIn] = [:]
            for spec in options.mcp {
                let server = try await MCPStandIn.start(label: spec.name, tools: spec.tools)
                stops.append { await server.stop() }
                mcp[spec.name] = server
            }

            // 1. The issuer's URL.
            var front: ForwardingFront?
            var standIn: StandInOIDCProvider?
            let issuer: String
            switch options.identity {
            case .developmentIdP:
                let f = try await ForwardingFront.start()
                stops.append { await f.stop() }
                front = f
                issuer = f.baseURL
            case .standIn(let behaviour):
                let provider = try await StandInOIDCProvider.start(behaviour)
                stops.append { await provider.stop() }
                standIn = provider
                issuer = provider.issuer
            }
            var idpOptions = IdentityProviderOptions()
            idpOptions.port = 0
            idpOptions.issuer = issuer
            idpOptions.dataDirectory = dir + "/idp"
            idpOptions.logger = logger("agent0-tests.idp")

            // 2. todo0 (its access tokens come from the IdP's todo-mcp authorization server).
            var todo: Todo0Service?
            let agentKeyPath = dir + "/agent0-private-key.pem"
            if options.todo0 {
                idpOptions.config = .development()
                _ = try await initializeAgent(options: idpOptions, agentID: agentID, keyID: agentKeyID, privateKeyPath: agentKeyPath)
                var todoOptions = Todo0Options()
                todoOptions.mcpPort = 0
                todoOptions.restPort = 0
                todoOptions.dataDirectory = dir + "/todo0"
                todoOptions.authorizationServer = issuer + "/oauth2/todo-mcp"
                todoOptions.resource = todoResource
                todoOptions.logger = logger("agent0-tests.todo0")
                let handle = try await Todo0Service.start(todoOptions)
                stops.append { await handle.stop() }
                todo = handle
            }

            // 3. The gateway.
            let configPath = dir + "/connections.yaml"
            try connectionsYAML(issuer: issuer, mcp: options.mcp.map { ($0.name, mcp[$0.name]!.url) }, todo0: todo, agentKeyPath: agentKeyPath)
                .write(toFile: configPath, atomically: true, encoding: .utf8)
            var gatewayOptions = GatewayOptions(configPath: configPath, plugins: StandardPlugins.registry())
            gatewayOptions.port = 0
            gatewayOptions.environment = [:]
            gatewayOptions.handleSIGHUP = false
            gatewayOptions.logger = logger("agent0-tests.gateway")
            let (gatewayPorts, gatewayContinuation) = AsyncStream.makeStream(of: Int.self)
            gatewayOptions.onServerRunning = { gatewayContinuation.yield($0) }
            let gateway = try await TestHTTPServer.run(try await buildGatewayApplication(gatewayOptions), ports: gatewayPorts)
            stops.append { await gateway.stop() }

            // 4. agent0.
            var agentOptions = Agent0Options()
            agentOptions.port = 0
            agentOptions.publicURL = options.publicURL
            agentOptions.issuer = issuer
            agentOptions.gatewayURL = gateway.baseURL
            agentOptions.llmURL = llm.baseURL
            if let rounds = options.maxRounds { agentOptions.maxRounds = rounds }
            if let timeout = options.loginTimeout { agentOptions.loginTimeout = timeout }
            agentOptions.logger = logger("agent0-tests.agent0")
            let (agentPorts, agentContinuation) = AsyncStream.makeStream(of: Int.self)
            agentOptions.onServerRunning = { agentContinuation.yield($0) }
            let agent0 = try await TestHTTPServer.run(try await buildAgent0Application(agentOptions), ports: agentPorts)
            stops.append { await agent0.stop() }

            // 5. The development IdP, now that agent0's redirect URI is known.
            if let front {
                idpOptions.config = .development(agent0: options.publicURL ?? agent0.baseURL, todo0Resource: todoResource)
                let idp = try await IdentityProviderService.start(idpOptions)
                stops.append { await idp.stop() }
                front.setBackend(idp.baseURL)
            }
            return Agent0Stack(options: options, directory: dir, issuer: issuer, llm: llm, standIn: standIn, mcp: mcp, gateway: gateway, agent0: agent0, stops: stops)
        } catch {
            await stopAll()
            throw error
        }
    }

    func stop() async {
        for stop in stops.reversed() { await stop() }
    }

    /// The gateway's registry: one `none` connection per stand-in, todo0 behind `idjag`.
    static func connectionsYAML(issuer: String, mcp: [(name: String, url: String)], todo0: Todo0Service?, agentKeyPath: String) -> String {
        var yaml = """
            version: 1

            gateway:
              reload:
                watch: false

            """
        if todo0 != nil {
            yaml += """
                agent:
                  id: \(agentID)
                  private_key: file:\(agentKeyPath)
                  key_id: \(agentKeyID)

                """
        }
        yaml += """
            users:
              issuer: \(issuer)
              audience: agent0

            connections:

            """
        if mcp.isEmpty && todo0 == nil { yaml += "  []\n" }
        for server in mcp {
            yaml += """
                  - name: \(server.name)
                    kind: mcp_server
                    title: \(server.name.capitalized) Server
                    upstream: \(server.url)
                    auth:
                      strategy: none

                """
        }
        if let todo0 {
            yaml += """
                  - name: todo-mcp-as
                    kind: authorization_server
                    title: Todo MCP Authorization Server
                    issuer: \(issuer)/oauth2/todo-mcp

                  - name: todo0
                    kind: mcp_server
                    title: Todo0 MCP Server
                    upstream: \(todo0.mcpURL)
                    resource: \(todoResource)
                    auth:
                      strategy: idjag
                      authorization_server: todo-mcp-as
                      scopes: [mcp:connect, mcp:tools:read]

                """
        }
        return yaml
    }

    // MARK: the browser's side

    /// A browser for this agent0 (reaching the public URL through the "proxy" when one is set).
    func browser() -> Browser {
        Browser(rewrites: options.publicURL.map { [($0, baseURL)] } ?? [])
    }

    /// The development IdP's password for `username`.
    static func password(_ username: String) -> String {
        IdPConfig.developmentDefaults.users.first { $0.username == username }?.password ?? ""
    }

    /// The development IdP's directory entry for `username`.
    static func user(_ username: String) -> IdPConfig.User? {
        IdPConfig.developmentDefaults.users.first { $0.username == username }
    }

    /// `browser` at the users' identity provider, through its cookie jar.
    func idp(_ browser: Browser) -> IdPBrowser {
        IdPBrowser(issuer: issuer, transport: { method, url, headers, body in try await browser.send(method, url, headers: headers, body: body) })
    }

    /// A sign-in up to the IdP's redirect back to agent0 (not followed yet).
    struct SignInStart: Sendable {
        /// agent0's answer to `GET /login`.
        var login: Answer
        var authorizeURL: String
        /// The answer that sent the browser back (the IdP's 302).
        var returned: Answer
        /// Where it sent it: `{publicURL}/callback?…`.
        var callbackURL: String
    }

    /// `GET /login`, the IdP's authorization page and its login form (the development IdP) or
    /// its immediate answer (the stand-in), up to the redirect to agent0's `/callback`.
    func startSignIn(_ browser: Browser, as username: String = "alice") async throws -> SignInStart {
        let login = try await browser.get(url("/login"))
        guard login.status == 302, let authorize = login.header("Location") else { throw StepFailed("GET /login: \(login)") }
        var answer = try await browser.get(authorize)
        if answer.status == 200, TestHTTP.formAction(answer.body) != nil {
            answer = try await idp(browser).fillInLogin(answer, at: authorize, username: username, password: Self.password(username))
        }
        guard answer.status == 302, let callback = answer.header("Location"), callback.hasPrefix(publicURL + "/callback?") else {
            throw StepFailed("the IdP did not send the browser back to agent0: \(answer)")
        }
        return SignInStart(login: login, authorizeURL: authorize, returned: answer, callbackURL: callback)
    }

    /// A completed sign-in.
    struct SignedIn: Sendable {
        var callback: Answer
        /// `GET /auth/status` right after.
        var status: JSONValue
        var csrf: String
        var session: String
    }

    /// Signs `username` in the whole way and reads `/auth/status`.
    func signIn(_ browser: Browser, as username: String = "alice") async throws -> SignedIn {
        let start = try await startSignIn(browser, as: username)
        let callback = try await browser.get(start.callbackURL)
        guard callback.status == 302, callback.header("Location") == "/", let session = browser.cookie(Self.sessionCookie) else {
            throw StepFailed("GET /callback: \(callback)")
        }
        let status = try await browser.get(url("/auth/status"))
        guard let json = status.jsonValue, json["authenticated"]?.bool == true, let csrf = json["csrf_token"]?.string else {
            throw StepFailed("/auth/status after sign-in: \(status)")
        }
        return SignedIn(callback: callback, status: json, csrf: csrf, session: session)
    }

    /// A POST with a JSON body and, when given, the CSRF token and `Origin`.
    func post(_ browser: Browser, _ path: String, json body: String, csrf: String?, origin: String? = nil) async throws -> Answer {
        var headers = [("Content-Type", "application/json")]
        if let csrf { headers.append(("X-CSRF-Token", csrf)) }
        if let origin { headers.append(("Origin", origin)) }
        return try await browser.send(.POST, url(path), headers: headers, body: body)
    }

    /// `POST /api/chat {"message": text}` as the page sends it.
    func chat(_ browser: Browser, _ user: SignedIn, _ text: String) async throws -> Answer {
        let body: JSONValue = ["message": .string(text)]
        return try await post(browser, "/api/chat", json: String(decoding: body.encoded(), as: UTF8.self), csrf: user.csrf, origin: TestHTTP.origin(publicURL))
    }
}

/// Runs `body` with a fresh stack and stops it afterwards, whatever happens.
func withAgent0Stack(_ options: Agent0Stack.Options = .init(), _ body: (Agent0Stack) async throws -> Void) async throws {
    let stack = try await Agent0Stack.start(options)
    try await withCleanup({ try await body(stack) }, cleanup: { await stack.stop() })
}
