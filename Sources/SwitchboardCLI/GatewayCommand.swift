import ArgumentParser
import Foundation
import Gateway
import PluginAPI
import Hummingbird
import Logging
import PostgresState
import StandardPlugins

/// `switchboard gateway`: serve the registry in connections.yaml.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Run the gateway: load connections.yaml, proxy /mcp/{name} and /rest/{name}/…, serve status.",
        discussion: "Environment: SWITCHBOARD_CONFIG, GATEWAY_HOST, GATEWAY_PORT, LOG_LEVEL, DISABLED_CONNECTIONS, and any ${VAR} the file uses. Flags win over the environment."
    )

    @Option(help: "Path of connections.yaml (env SWITCHBOARD_CONFIG).")
    var config: String?

    @Option(help: "Address to listen on (env GATEWAY_HOST).")
    var host: String?

    @Option(help: "Port to listen on (env GATEWAY_PORT).")
    var port: Int?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        var options = GatewayOptions(
            configPath: config ?? env["SWITCHBOARD_CONFIG"] ?? "connections.yaml", plugins: StandardPlugins.registry())
        options.host = host ?? env["GATEWAY_HOST"] ?? "127.0.0.1"
        options.port = port ?? env["GATEWAY_PORT"].flatMap(Int.init) ?? 8080
        options.logger = CLILogging.logger("switchboard.gateway")
        options.sharedState = PostgresStateStore.factory
        let tracing = CLITracing.start(service: "switchboard-gateway", logger: options.logger)
        let otlpMetrics = CLITracing.metrics(service: "switchboard-gateway", logger: options.logger)
        options.additionalMetrics = otlpMetrics?.factory
        let app: any ApplicationProtocol
        do {
            app = try await buildGatewayApplication(options)
        } catch let error as ConfigErrors {
            FileHandle.standardError.write(Data((error.description + "\nthe gateway did not start: fix the file and try again\n").utf8))
            throw ExitCode(1)
        } catch let error as StateStoreError {
            FileHandle.standardError.write(Data("\(error)\nthe gateway did not start\n".utf8))
            throw ExitCode(1)
        }
        try await CLITracing.run(app, tracing: tracing, metrics: otlpMetrics?.service, logger: options.logger)
    }
}
