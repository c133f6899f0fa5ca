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
        abstract: "Run the identity provider (:9000), todo0 (:5002 MCP, :5001 REST), the GitHub stand-in (:7000), the LLM adapter (:4000) and the gateway (:8080) together on their development defaults."
    )

    @Option(help: "Data directory for keys, grants and consents (env SWITCHBOARD_DATA_DIR).") var dataDir: String?
    @Option(help: "Path of connections.yaml (env SWITCHBOARD_CONFIG).") var config: String?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let dataDir = dataDir ?? env["SWITCHBOARD_DATA_DIR"] ?? ".switchboard"
        var idpOptions = IdentityProviderOptions()
        idpOptions.dataDirectory = dataDir
        idpOptions.logger = CLILogging.logger("switchboard.idp")
        let keyFile = env["AGENT_KEY_FILE"] ?? dataDir + "/agent0-private-key.pem"
        if !FileManager.default.fileExists(atPath: keyFile) {
            print(try await initializeAgent(options: idpOptions, agentID: env["AGENT_ID"] ?? "wlp-dev-agent0", keyID: env["AGENT_KEY_ID"] ?? "dev-agent0-key", privateKeyPath: keyFile))
        }
        let idp = try await buildIdentityProviderApplication(idpOptions)

        var gatewayOptions = GatewayOptions(configPath: config ?? env["SWITCHBOARD_CONFIG"] ?? "connections.yaml", plugins: StandardPlugins.registry())
        gatewayOptions.logger = CLILogging.logger("switchboard.gateway")
        let gateway: any ApplicationProtocol
        do {
            gateway = try await buildGatewayApplication(gatewayOptions)
        } catch let error as ConfigErrors {
            FileHandle.standardError.write(Data((error.description + "\nthe gateway did not start: fix the file and try again\n").utf8))
            throw ExitCode(1)
        }
        var todoOptions = Todo0Command.options(dataDir: dataDir)
        todoOptions.logger = CLILogging.logger("switchboard.todo0")
        let todo0 = try await buildTodo0(todoOptions)
        let isv = try await buildISVApplication(ISVCommand.options(dataDir: dataDir))
        let llm = try await buildLLMAdapterApplication(try LLMCommand.options())
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: idp), .init(service: todo0), .init(service: isv), .init(service: llm), .init(service: gateway)], gracefulShutdownSignals: [.sigterm, .sigint],
            logger: CLILogging.logger("switchboard.dev")))
        try await group.run()
    }
}
