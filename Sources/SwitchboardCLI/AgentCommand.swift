import Agent0
import ArgumentParser
import Foundation
import Hummingbird

/// `switchboard agent`: agent0, the web app a person signs in to and chats with.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run agent0 (:3000): sign-in, chat whose tools run through the gateway, the Managed Connections panel.",
        discussion: """
            Environment: AGENT0_HOST, AGENT0_PORT, AGENT0_PUBLIC_URL (the URL browsers use; https makes cookies Secure), \
            OKTA_ISSUER (the users' OIDC issuer), AGENT0_CLIENT_ID, AGENT0_CLIENT_SECRET, GATEWAY_URL, LLM_URL, LLM_API_KEY, \
            AGENT0_MODEL, LOG_LEVEL. Flags win.
            """
    )

    @Option(help: "Address to listen on (env AGENT0_HOST).") var host: String?
    @Option(help: "Port (env AGENT0_PORT).") var port: Int?
    @Option(help: "The users' OIDC issuer (env OKTA_ISSUER).") var issuer: String?
    @Option(help: "The gateway's base URL (env GATEWAY_URL).") var gateway: String?
    @Option(help: "The LLM adapter's base URL (env LLM_URL).") var llm: String?

    func run() async throws {
        var options = Agent0Options(environment: ProcessInfo.processInfo.environment)
        if let host { options.host = host }
        if let port { options.port = port }
        if let issuer { options.issuer = issuer }
        if let gateway { options.gatewayURL = gateway }
        if let llm { options.llmURL = llm }
        options.logger = CLILogging.logger("switchboard.agent")
        let tracing = CLITracing.start(service: "switchboard-agent0", logger: options.logger)
        try await CLITracing.run(try await buildAgent0Application(options), tracing: tracing, logger: options.logger)
    }
}
