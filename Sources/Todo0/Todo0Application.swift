import AsyncHTTPClient
import Foundation
import SwitchboardJSON
import MCPServerKit
import Hummingbird
public import Logging
public import ServiceLifecycle

/// Everything `switchboard todo0` needs. The CLI and the tests build the same one.
public struct Todo0Options: Sendable {
    public var host: String = "127.0.0.1"
    /// MCP port (0 = free port).
    public var mcpPort: Int = 5002
    /// REST port (0 = free port).
    public var restPort: Int = 5001
    /// Where `todo0.sqlite` lives.
    public var dataDirectory: String = ".switchboard"
    /// The authorization server whose access tokens are accepted (metadata + JWKS from it).
    public var authorizationServer: String = "http://127.0.0.1:9000/oauth2/todo-mcp"
    /// This MCP server's resource indicator: the `aud` its tokens must carry. Default
    /// `http://{host}:{mcpPort}/mcp`.
    public var resource: String?
    /// Origins allowed to call `/mcp` (a trailing `:*` matches any port).
    public var allowedOrigins: [String] = ["http://127.0.0.1:*", "http://localhost:*"]
    /// Answer every request with SSE instead of JSON (when the client accepts it).
    public var alwaysSSE: Bool = false
    public var logger: Logger = Logger(label: "switchboard.todo0")
    /// Called with (mcpPort, restPort) once both listen.
    public var onServerRunning: (@Sendable (Int, Int) async -> Void)?

    public init() {}
}

/// Builds todo0: the MCP server and the REST API, sharing one store and one token guard.
/// Returns a service that runs both until shut down.
public func buildTodo0(_ options: Todo0Options) async throws -> any Service {
    try FileManager.default.createDirectory(atPath: options.dataDirectory, withIntermediateDirectories: true)
    let store = try TodoStore(path: options.dataDirectory + "/todo0.sqlite")
    let httpClient = HTTPClient(eventLoopGroupProvider: .singleton)
    let ports = PortPair()
    let logger = options.logger
    let resource = options.resource ?? "http://\(options.host):\(options.mcpPort)/mcp"
    let mcpBase = URL(string: resource).flatMap { u in u.host.map { "\(u.scheme ?? "http")://\($0)\(u.port.map { ":\($0)" } ?? "")" } } ?? "http://\(options.host):\(options.mcpPort)"
    let guardian = AccessTokenGuard(
        issuer: options.authorizationServer, resource: resource, resourceMetadataURL: mcpBase + "/.well-known/oauth-protected-resource/mcp", httpClient: httpClient)

    let mcpRouter = Router(context: BasicRequestContext.self)
    mcpRouter.add(middleware: TracingMiddleware())  // continues the gateway's trace (a no-op without a tracer)
    MCPEndpoint(tools: TodoTools(store: store), guardian: guardian, sessions: MCPSessions(), allowedOrigins: options.allowedOrigins,
                alwaysSSE: options.alwaysSSE, logger: logger, connectScope: TodoTools.connectScope).register(on: mcpRouter)
    let metadata: JSONValue = [
        "resource": .string(resource), "authorization_servers": [.string(options.authorizationServer)],
        "scopes_supported": [.string(TodoTools.connectScope), .string(TodoTools.readScope), .string(TodoTools.manageScope)],
        "bearer_methods_supported": ["header"], "resource_name": "Todo0 MCP Server",
    ]
    mcpRouter.get("/.well-known/oauth-protected-resource") { _, _ in json(metadata) }
    mcpRouter.get("/.well-known/oauth-protected-resource/mcp") { _, _ in json(metadata) }
    mcpRouter.get("/healthz") { _, _ in json(["status": "ok"]) }

    let restRouter = Router(context: BasicRequestContext.self)
    restRouter.add(middleware: TracingMiddleware())
    RESTEndpoint(store: store, guardian: guardian).register(on: restRouter)
    restRouter.get("/healthz") { _, _ in json(["status": "ok"]) }

    let onRunning = options.onServerRunning
    let mcp = Application(
        router: mcpRouter, configuration: .init(address: .hostname(options.host, port: options.mcpPort), serverName: "todo0"),
        onServerRunning: { channel in
            logger.info("todo0 MCP listening", metadata: ["address": "\(channel.localAddress?.description ?? "")", "resource": "\(resource)"])
            if let both = await ports.set(mcp: channel.localAddress?.port ?? 0) { await onRunning?(both.0, both.1) }
        }, logger: logger)
    let rest = Application(
        router: restRouter, configuration: .init(address: .hostname(options.host, port: options.restPort), serverName: "todo0"),
        onServerRunning: { channel in
            logger.info("todo0 REST listening", metadata: ["address": "\(channel.localAddress?.description ?? "")"])
            if let both = await ports.set(rest: channel.localAddress?.port ?? 0) { await onRunning?(both.0, both.1) }
        }, logger: logger)
    return Todo0Service(mcp: mcp, rest: rest, httpClient: httpClient, logger: logger)
}

/// Runs the MCP and REST applications together; shuts the HTTP client down after.
struct Todo0Service: Service {
    let mcp: any Service
    let rest: any Service
    let httpClient: HTTPClient
    let logger: Logger

    func run() async throws {
        let group = ServiceGroup(configuration: .init(services: [.init(service: mcp), .init(service: rest)], logger: logger))
        do {
            try await withGracefulShutdownHandler {
                try await group.run()
            } onGracefulShutdown: {
                Task { await group.triggerGracefulShutdown() }
            }
        } catch {
            try? await httpClient.shutdown()
            throw error
        }
        try await httpClient.shutdown()
    }
}

/// Collects the two bound ports; answers both once the second arrives.
actor PortPair {
    var mcp: Int?
    var rest: Int?
    func set(mcp: Int) -> (Int, Int)? {
        self.mcp = mcp
        return rest.map { (mcp, $0) }
    }
    func set(rest: Int) -> (Int, Int)? {
        self.rest = rest
        return mcp.map { ($0, rest) }
    }
}
