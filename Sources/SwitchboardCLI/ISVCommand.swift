import ArgumentParser
import Foundation
import Hummingbird
import ISVStandIn

/// `switchboard isv`: the offline third-party app reached through OAuth STS.
struct ISVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "isv",
        abstract: "Run the offline GitHub stand-in (:7000): REST subset and MCP, accepting only IdP-brokered STS tokens.",
        discussion: "Environment: ISV_HOST, ISV_PORT, IDP_ISSUER, SWITCHBOARD_DATA_DIR, LOG_LEVEL. Flags win."
    )

    @Option(help: "Address to listen on (env ISV_HOST).") var host: String?
    @Option(help: "Port (env ISV_PORT).") var port: Int?
    @Option(help: "Data directory for isv.sqlite (env SWITCHBOARD_DATA_DIR).") var dataDir: String?
    @Option(help: "The identity provider whose STS tokens are accepted (env IDP_ISSUER).") var identityProvider: String?

    func run() async throws {
        let options = Self.options(host: host, port: port, dataDir: dataDir, identityProvider: identityProvider)
        let tracing = CLITracing.start(service: "switchboard-isv", logger: options.logger)
        let app = try await buildISVApplication(options)
        try await CLITracing.run(app, tracing: tracing, logger: options.logger)
    }

    static func options(host: String? = nil, port: Int? = nil, dataDir: String? = nil, identityProvider: String? = nil) -> ISVOptions {
        let env = ProcessInfo.processInfo.environment
        var o = ISVOptions()
        o.host = host ?? env["ISV_HOST"] ?? "127.0.0.1"
        o.port = port ?? env["ISV_PORT"].flatMap(Int.init) ?? 7000
        o.dataDirectory = dataDir ?? env["SWITCHBOARD_DATA_DIR"] ?? ".switchboard"
        o.identityProvider = identityProvider ?? env["IDP_ISSUER"] ?? "http://127.0.0.1:9000"
        o.logger = CLILogging.logger("switchboard.isv")
        return o
    }
}
