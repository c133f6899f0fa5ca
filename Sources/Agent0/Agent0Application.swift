import AsyncHTTPClient
import Foundation
public import Hummingbird
import Logging
import OAuthCore
import Synchronization

/// Builds agent0: the page, sign-in, the chat API and the panel's data. With port 0 the public
/// URL follows the bound port unless `publicURL` is set.
public func buildAgent0Application(_ options: Agent0Options) async throws -> some ApplicationProtocol {
    let agent = try Agent0(options: options)
    let router = Router(context: BasicRequestContext.self)
    // Each request continues the caller's trace (a no-op without a tracer); no OAuth secret from a query in a span.
    router.add(middleware: TracingMiddleware(redactingQueryParameters: SecretParameters.query))
    AuthRoutes(agent: agent).register(on: router)
    ChatRoutes(agent: agent).register(on: router)
    router.get("/health") { _, _ in jsonResponse(["status": "ok"]) }
    router.get("/") { request, _ in agent.assets.response("/", request: request) ?? AgentError(code: "not_found", status: .notFound, message: "no page").response() }
    router.get("/static/**") { request, _ in
        agent.assets.response(request.uri.path, request: request) ?? AgentError(code: "not_found", status: .notFound, message: "no such file").response()
    }
    let logger = options.logger
    let onRunning = options.onServerRunning
    return Application(
        responder: SecurityHeadersResponder(inner: router.buildResponder()),
        configuration: .init(address: .hostname(options.host, port: options.port), serverName: "agent0"),
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? options.port
            if options.publicURL == nil { agent.bind(publicURL: "http://\(options.host):\(port)") }
            logger.info("agent0 listening", metadata: ["url": "\(agent.publicURL)", "gateway": "\(options.gatewayURL)", "llm": "\(options.llmURL)"])
            await onRunning?(port)
        },
        logger: logger)
}

/// What the routes share: the clients, the sessions and the one place the public URL lives.
final class Agent0: Sendable {
    let options: Agent0Options
    let sessions: SessionStore
    let oidc: OIDCClient
    let gateway: GatewayClient
    let runner: TurnRunner
    let assets: StaticAssets
    private let boundURL: Mutex<String>

    init(options: Agent0Options) throws {
        self.options = options
        let http = HTTPClient.shared
        sessions = SessionStore(loginTimeout: options.loginTimeout)
        oidc = OIDCClient(issuer: options.issuer, clientID: options.clientID, clientSecret: options.clientSecret, httpClient: http, logger: options.logger)
        let gatewayBase = options.gatewayURL.hasSuffix("/") ? String(options.gatewayURL.dropLast()) : options.gatewayURL
        gateway = GatewayClient(baseURL: gatewayBase, httpClient: http, timeout: options.toolTimeout)
        let llmBase = options.llmURL.hasSuffix("/") ? String(options.llmURL.dropLast()) : options.llmURL
        runner = TurnRunner(
            gateway: gateway, mcp: MCPClient(gateway: gateway),
            model: MessagesClient(baseURL: llmBase, apiKey: options.llmAPIKey, model: options.model, httpClient: http, timeout: options.modelTimeout),
            maxRounds: options.maxRounds, maxTurnsInContext: options.maxTurnsInContext, githubConnection: options.githubConnection, logger: options.logger)
        assets = try StaticAssets.load()
        let initial = options.publicURL ?? "http://\(options.host):\(options.port)"
        boundURL = Mutex(initial.hasSuffix("/") ? String(initial.dropLast()) : initial)
    }

    /// `http(s)://host:port` without a trailing slash.
    var publicURL: String { boundURL.withLock { $0 } }
    var redirectURI: String { publicURL + "/callback" }
    var secureCookies: Bool { publicURL.lowercased().hasPrefix("https://") }
    var logger: Logger { options.logger }

    func bind(publicURL url: String) { boundURL.withLock { $0 = url } }

    /// The origin a browser sends in `Origin` for this app's own requests.
    var origin: String {
        guard let u = URL(string: publicURL), let scheme = u.scheme, let host = u.host else { return publicURL }
        return "\(scheme)://\(host)" + (u.port.map { ":\($0)" } ?? "")
    }
}
