import ArgumentParser
import Foundation
import Hummingbird
import IdentityProvider

/// `switchboard idp`: the Okta-compatible identity provider for development and tests.
struct IdPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "idp",
        abstract: "Run the development identity provider (OIDC login, ID-JAG token exchange, JWT-bearer AS, OAuth STS with consent).",
        discussion: "Environment: IDP_HOST, IDP_PORT, IDP_ISSUER, SWITCHBOARD_DATA_DIR, LOG_LEVEL. Flags win."
    )

    @Option(help: "Address to listen on (env IDP_HOST).") var host: String?
    @Option(help: "Port to listen on (env IDP_PORT).") var port: Int?
    @Option(help: "Issuer URL (env IDP_ISSUER; default http://HOST:PORT).") var issuer: String?
    @Option(help: "Data directory for keys, grants and consents (env SWITCHBOARD_DATA_DIR).") var dataDir: String?
    @Option(help: "idp.yaml with users, clients, agents, authorization servers and apps (default: embedded development defaults).") var config: String?
    @Flag(help: "Create the agent's key pair, register its public key and write the private key file, then exit.") var initAgent = false
    @Option(help: "With --init-agent: the agent's client id.") var agentId = "wlp-dev-agent0"
    @Option(help: "With --init-agent: the key id.") var agentKeyId = "dev-agent0-key"
    @Option(help: "With --init-agent: where to write the private key (default DATA_DIR/agent0-private-key.pem).") var agentKeyFile: String?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        var options = IdentityProviderOptions()
        options.host = host ?? env["IDP_HOST"] ?? "127.0.0.1"
        options.port = port ?? env["IDP_PORT"].flatMap(Int.init) ?? 9000
        options.issuer = issuer ?? env["IDP_ISSUER"]
        options.dataDirectory = dataDir ?? env["SWITCHBOARD_DATA_DIR"] ?? ".switchboard"
        options.configPath = config
        options.logger = CLILogging.logger("switchboard.idp")
        if initAgent {
            let path = agentKeyFile ?? options.dataDirectory + "/agent0-private-key.pem"
            print(try await initializeAgent(options: options, agentID: agentId, keyID: agentKeyId, privateKeyPath: path))
            return
        }
        let tracing = CLITracing.start(service: "switchboard-idp", logger: options.logger)
        let app = try await buildIdentityProviderApplication(options)
        try await CLITracing.run(app, tracing: tracing, logger: options.logger)
    }
}
