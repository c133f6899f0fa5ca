import Agent0
import ArgumentParser
import Foundation
import Gateway
import Hummingbird
import IdentityProvider
import ISVStandIn
import LLMAdapter
import Logging
import PluginAPI
import ServiceLifecycle
import StandardPlugins
import Todo0

/// `switchboard dev`: the whole system in one process on its embedded defaults (loopback
/// only, no internet, no Okta tenant). Creates the agent key on first run.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run agent0 (:3000), the identity provider (:9000), todo0 (:5002 MCP, :5001 REST), the GitHub stand-in (:7000), the LLM adapter (:4000) and the gateway (:8080) together on their development defaults.",
        discussion: """
            --port-offset N moves every port by N (agent0 3000+N, IdP 9000+N, …). The URLs in connections.yaml follow through \
            the variables it reads (OKTA_ISSUER, MCP_AUTHORIZATION_SERVER, TODO0_MCP_URL, TODO0_RESOURCE, GITHUB_API_URL, \
            GITHUB_MCP_SERVER_URL), which dev sets unless they are set already.
            """
    )

    @Option(help: "Data directory for keys, grants and consents (env SWITCHBOARD_DATA_DIR).") var dataDir: String?
    @Option(help: "Path of connections.yaml (env SWITCHBOARD_CONFIG).") var config: String?
    @Option(help: "Add this to every port (tests run the system on free ports).") var portOffset: Int = 0
    @Flag(help: "Export traces over OTLP/HTTP to a local collector (OTEL_EXPORTER_OTLP_ENDPOINT, default http://127.0.0.1:4318).")
    var otel = false

    /// Every service's port, moved together.
    struct Ports {
        let offset: Int
        var agent0: Int { 3000 + offset }
        var idp: Int { 9000 + offset }
        var todo0MCP: Int { 5002 + offset }
        var todo0REST: Int { 5001 + offset }
        var isv: Int { 7000 + offset }
        var llm: Int { 4000 + offset }
        var gateway: Int { 8080 + offset }
    }

    func run() async throws {
        guard (-2000...55000).contains(portOffset) else { throw ValidationError("--port-offset must keep every port between 1000 and 65535") }
        let ports = Ports(offset: portOffset)
        let host = "127.0.0.1"
        let issuer = "http://\(host):\(ports.idp)"
        let agent0URL = "http://\(host):\(ports.agent0)"
        let todo0Resource = "http://\(host):\(ports.todo0MCP)/mcp"
        let isvBase = "http://\(host):\(ports.isv)"
        // What connections.yaml interpolates; a value already set by the user wins.
        for (key, value) in [
            ("OKTA_ISSUER", issuer), ("MCP_AUTHORIZATION_SERVER", issuer + "/oauth2/todo-mcp"), ("TODO0_MCP_URL", todo0Resource),
            ("TODO0_RESOURCE", todo0Resource), ("GITHUB_API_URL", isvBase), ("GITHUB_MCP_SERVER_URL", isvBase + "/mcp"),
        ] { setenv(key, value, 0) }
        // Tracing first: the services' HTTP clients take the tracer when they are made.
        if otel { setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", 0) }
        let devLogger = CLILogging.logger("switchboard.dev")
        let tracing = CLITracing.start(service: "switchboard-dev", logger: devLogger)
        let env = ProcessInfo.processInfo.environment
        let dataDir = dataDir ?? env["SWITCHBOARD_DATA_DIR"] ?? ".switchboard"

        var idpOptions = IdentityProviderOptions()
        idpOptions.dataDirectory = dataDir
        idpOptions.port = ports.idp
        idpOptions.issuer = issuer
        idpOptions.config = .development(agent0: agent0URL, todo0Resource: env["TODO0_RESOURCE"] ?? todo0Resource, isv: isvBase)
        idpOptions.logger = CLILogging.logger("switchboard.idp")
        let keyFile = env["AGENT_KEY_FILE"] ?? dataDir + "/agent0-private-key.pem"
        if !FileManager.default.fileExists(atPath: keyFile) {
            print(try await initializeAgent(options: idpOptions, agentID: env["AGENT_ID"] ?? "wlp-dev-agent0", keyID: env["AGENT_KEY_ID"] ?? "dev-agent0-key", privateKeyPath: keyFile))
        }
        if env["AGENT_KEY_FILE"] == nil { setenv("AGENT_KEY_FILE", keyFile, 0) }
        let idp = try await buildIdentityProviderApplication(idpOptions)

        var gatewayOptions = GatewayOptions(configPath: config ?? env["SWITCHBOARD_CONFIG"] ?? "connections.yaml", plugins: StandardPlugins.registry())
        gatewayOptions.port = ports.gateway
        gatewayOptions.logger = CLILogging.logger("switchboard.gateway")
        let gateway: any ApplicationProtocol
        do {
            gateway = try await buildGatewayApplication(gatewayOptions)
        } catch let error as ConfigErrors {
            FileHandle.standardError.write(Data((error.description + "\nthe gateway did not start: fix the file and try again\n").utf8))
            throw ExitCode(1)
        }
        var todoOptions = Todo0Command.options(port: ports.todo0MCP, restPort: ports.todo0REST, dataDir: dataDir)
        todoOptions.logger = CLILogging.logger("switchboard.todo0")
        let todo0 = try await buildTodo0(todoOptions)
        let isv = try await buildISVApplication(ISVCommand.options(port: ports.isv, dataDir: dataDir, identityProvider: issuer))
        let llm = try await buildLLMAdapterApplication(try LLMCommand.options(port: ports.llm))

        var agentOptions = Agent0Options(environment: env)
        agentOptions.port = ports.agent0
        agentOptions.issuer = env["OKTA_ISSUER"] ?? issuer  // what the gateway trusts too (users.issuer)
        agentOptions.gatewayURL = "http://\(host):\(ports.gateway)"
        agentOptions.llmURL = "http://\(host):\(ports.llm)"
        agentOptions.logger = CLILogging.logger("switchboard.agent")
        let agentURL = agent0URL
        agentOptions.onServerRunning = { _ in
            FileHandle.standardOutput.write(Data("open \(agentURL) — sign in as alice / alice-dev-password\n".utf8))
        }
        let agent = try await buildAgent0Application(agentOptions)

        // The exporter first in the list: a group stops its services in reverse, so it sends the last spans.
        let services: [any Service] = (tracing.map { [$0] } ?? []) + [idp, todo0, isv, llm, gateway, agent]
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: devLogger))
        try await group.run()
    }
}
