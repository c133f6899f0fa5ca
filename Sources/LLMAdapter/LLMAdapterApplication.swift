import AsyncHTTPClient
import Crypto
import Foundation
public import Hummingbird
import Logging
import ServiceLifecycle

/// Builds `switchboard llm`: the Messages API on `options.host:options.port` in front of the
/// configured backend.
public func buildLLMAdapterApplication(_ options: LLMAdapterOptions) async throws -> some ApplicationProtocol {
    let logger = options.logger
    var client: HTTPClient?
    let backend: any LLMBackend
    func caller(_ upstream: String) -> UpstreamCaller {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        // The adapter retries on its own terms (RetryPolicy); a dead upstream fails fast.
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .nanoseconds(options.connectTimeout.nanosecondsClamped), read: .nanoseconds(options.idleTimeout.nanosecondsClamped))
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        client = http
        return UpstreamCaller(
            client: http, retry: RetryPolicy(maxRetries: options.maxRetries, baseDelay: options.retryBaseDelay, maxDelay: options.retryMaxDelay),
            timeout: options.upstreamTimeout, maxResponseBody: options.maxResponseBody, logger: logger, upstreamName: upstream)
    }
    switch options.backend {
    case .offline:
        backend = OfflineBackend()
    case .anthropic(let apiKey, let baseURL, let model):
        backend = AnthropicBackend(configuration: .init(apiKey: apiKey, baseURL: baseURL, model: model), caller: caller("the Anthropic API"))
    case .bedrock(let accessKeyID, let secretAccessKey, let sessionToken, let region, let modelID, let endpoint):
        backend = BedrockBackend(
            configuration: .init(
                credentials: AWSCredentials(accessKeyID: accessKeyID, secretAccessKey: secretAccessKey, sessionToken: sessionToken),
                region: region, modelID: modelID, endpoint: endpoint, now: options.now),
            caller: caller("Bedrock"))
    }

    let router = Router(context: BasicRequestContext.self)
    router.add(middleware: TracingMiddleware())  // continues the caller's trace (a no-op without a tracer)
    router.add(middleware: AnthropicErrorMiddleware())
    MessagesEndpoint(
        backend: backend, apiKeyDigest: options.apiKey.map { SHA256.hash(data: Data($0.utf8)) }, maxRequestBody: options.maxRequestBody, logger: logger
    ).register(on: router)

    let onRunning = options.onServerRunning
    let description = options.backend.description
    var app = Application(
        router: router, configuration: .init(address: .hostname(options.host, port: options.port), serverName: "switchboard-llm"),
        onServerRunning: { channel in
            logger.info("LLM adapter listening", metadata: ["address": "\(channel.localAddress?.description ?? "")", "backend": "\(description)"])
            await onRunning?(channel.localAddress?.port ?? options.port)
        }, logger: logger)
    if let client { app.addServices(HTTPClientShutdown(client: client)) }
    return app
}

/// Shuts the upstream client down once the server has stopped.
struct HTTPClientShutdown: Service {
    let client: HTTPClient

    func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}
