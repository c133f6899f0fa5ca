import ArgumentParser
import Foundation
import Hummingbird
import LLMAdapter

/// `switchboard llm`: the Anthropic Messages API in front of Anthropic, Bedrock or the offline planner.
struct LLMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llm",
        abstract: "Run the LLM adapter (:4000): POST /v1/messages in front of Anthropic, AWS Bedrock or the offline planner (default).",
        discussion: """
            Backend: LLM_BACKEND=offline|anthropic|bedrock; unset picks anthropic when ANTHROPIC_API_KEY is set, bedrock when \
            BEDROCK_MODEL_ID, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are, and the offline planner otherwise.
            Anthropic: ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, ANTHROPIC_MODEL.
            Bedrock: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, BEDROCK_MODEL_ID, AWS_ENDPOINT_URL_BEDROCK_RUNTIME.
            Adapter: LLM_API_KEY (clients must send it), LLM_HOST, LLM_PORT, LLM_MAX_RETRIES, LLM_TIMEOUT (s), LLM_MAX_BODY (bytes), LOG_LEVEL. Flags win.
            """
    )

    @Option(help: "Address to listen on (env LLM_HOST).") var host: String?
    @Option(help: "Port (env LLM_PORT).") var port: Int?
    @Option(help: "offline, anthropic or bedrock (env LLM_BACKEND).") var backend: String?

    func run() async throws {
        let options = try Self.options(host: host, port: port, backend: backend)
        let tracing = CLITracing.start(service: "switchboard-llm", logger: options.logger)
        let app = try await buildLLMAdapterApplication(options)
        try await CLITracing.run(app, tracing: tracing, logger: options.logger)
    }

    static func options(host: String? = nil, port: Int? = nil, backend: String? = nil) throws -> LLMAdapterOptions {
        var env = ProcessInfo.processInfo.environment
        if let backend { env["LLM_BACKEND"] = backend }
        var options: LLMAdapterOptions
        do {
            options = try LLMAdapterOptions(environment: env)
        } catch {
            FileHandle.standardError.write(Data("switchboard llm: \(error.description)\n".utf8))
            throw ExitCode(1)
        }
        if let host { options.host = host }
        if let port { options.port = port }
        options.logger = CLILogging.logger("switchboard.llm")
        return options
    }
}
