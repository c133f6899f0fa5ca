import AsyncHTTPClient
public import CoreMetrics
import Foundation
public import Hummingbird
import HummingbirdCore
public import Logging
import NIOCore
public import PluginAPI
import ServiceLifecycle
import Tracing
import Upstream

/// Everything `switchboard gateway` needs to start. The CLI and the tests build the same one.
public struct GatewayOptions: Sendable {
    /// Path of connections.yaml.
    public var configPath: String
    public var host: String = "127.0.0.1"
    /// 0 picks a free port (tests); see `onServerRunning`.
    public var port: Int = 8080
    /// The auth-strategy plugins to offer (usually `StandardPlugins.registry()`).
    public var plugins: PluginRegistry
    /// Environment for `${VAR}` interpolation and `DISABLED_CONNECTIONS`.
    public var environment: [String: String] = ProcessInfo.processInfo.environment
    public var logger: Logger = Logger(label: "switchboard.gateway")
    public var clock: any GatewayClock = SystemClock()
    /// Reload on SIGHUP (off in tests that run several gateways in one process).
    public var handleSIGHUP: Bool = true
    /// Forward requests that need no waiting on the event loop (``ProxyFastPath``). Off (or
    /// `SWITCHBOARD_FAST_PATH=off` in `environment`): every request takes the async path,
    /// which the benchmark compares against.
    public var fastPath: Bool = true
    /// Called with the bound port once the server listens.
    public var onServerRunning: (@Sendable (Int) async -> Void)?
    /// Where the metrics also go besides `/metrics` (the CLI's OTLP exporter, when configured).
    public var additionalMetrics: (any MetricsFactory)?
    /// Makes the store `gateway.state` names (the CLI's: PostgreSQL). Nil: a connections.yaml
    /// with `gateway.state` is refused.
    public var sharedState: SharedStateFactory?

    public init(configPath: String, plugins: PluginRegistry) {
        self.configPath = configPath
        self.plugins = plugins
    }
}

/// Builds the gateway: loads and validates connections.yaml (throws ``ConfigErrors`` if it is
/// invalid: the gateway refuses to start), provisions every plugin, and returns an
/// application that serves the proxy routes and the status API until shut down.
public func buildGatewayApplication(_ options: GatewayOptions) async throws -> some ApplicationProtocol {
    let logger = options.logger
    let loader = RegistryLoader(plugins: options.plugins, environment: options.environment)
    // Settings that shape the HTTP client are read once, at start.
    let fingerprint = FileFingerprint.of(options.configPath)
    let initialPlan = try loader.load(path: options.configPath)
    let settings = initialPlan.settings

    var clientConfig = HTTPClient.Configuration()
    clientConfig.redirectConfiguration = .disallow
    clientConfig.decompression = .disabled
    clientConfig.timeout = .init(
        connect: .nanoseconds(settings.connectTimeout.nanoseconds), read: .nanoseconds(settings.idleTimeout.nanoseconds))
    var pool = HTTPClient.Configuration.ConnectionPool(
        idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: settings.maxConnectionsPerUpstream)
    pool.retryConnectionEstablishment = false
    clientConfig.connectionPool = pool
    let httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfig)
    let upstreamPool = HTTP1ConnectionPool(
        maxPerOrigin: settings.maxConnectionsPerUpstream, connectTimeout: .nanoseconds(settings.connectTimeout.nanoseconds),
        idleTimeout: .nanoseconds(settings.idleTimeout.nanoseconds))
    let upstreamClient = UpstreamClient(pool: upstreamPool, fallback: httpClient)
    // `/metrics`: one registry per gateway (not swift-metrics' global bootstrap: tests run several).
    let exposition = PrometheusExposition(pool: upstreamPool, alsoTo: options.additionalMetrics)

    // The replicas' shared state: connected and migrated before the first call (read at start).
    var shared: (any SharedStateStore)?
    if let state = settings.state {
        guard let factory = options.sharedState else {
            try? await httpClient.shutdown()
            throw ConfigErrors([ConfigError(file: options.configPath, location: nil, message: "gateway.state: this gateway has no shared-state store built in")])
        }
        do {
            shared = try await factory(state, logger)
        } catch {
            try? await httpClient.shutdown()
            throw error
        }
    }

    let holder: RegistryHolder
    do {
        holder = try await RegistryHolder.start(
            configPath: options.configPath, plan: initialPlan, fingerprint: fingerprint, loader: loader, httpClient: httpClient, logger: logger, clock: options.clock,
            metrics: exposition.metrics, shared: shared)
    } catch {
        try? await httpClient.shutdown()
        throw error
    }

    let router = Router(context: BasicRequestContext.self)
    // With replicas: this one's name in the shared store, and the status it publishes there.
    let replica = shared.map { _ in (ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "replica") + "-" + String(UUID().uuidString.prefix(8)).lowercased() }
    StatusController(holder: holder, clock: options.clock, exposition: exposition, replica: replica).register(on: router)
    var proxy = ProxyHandler(holder: holder, upstreamClient: upstreamClient, logger: logger, clock: options.clock)
    // The audit trail: on unless `gateway.audit.sqlite: off` (and no JSON lines asked for).
    let audit = try auditLog(settings.audit, configPath: options.configPath, logger: logger)
    proxy.audit = audit
    // Tracing (a tracer bootstrapped by the process, e.g. from OTEL_*): every call gets its spans.
    proxy.tracing = !(InstrumentationSystem.tracer is NoOpTracer)
    AuditAPI(audit: audit, holder: holder).register(on: router)
    let aggregate = AggregateEndpoint(holder: holder, proxy: proxy, logger: logger, sessions: AggregateSessions(shared: shared))
    router.get("/api/tools") { request, _ in await aggregate.toolsDocument(request) }
    let responder = GatewayResponder(proxy: proxy, aggregate: aggregate, api: router.buildResponder())
    let fast = options.fastPath && options.environment["SWITCHBOARD_FAST_PATH"]?.lowercased() != "off"
        ? ProxyFastPath(proxy: proxy, aggregate: aggregate) : nil
    let inbound = InboundConnections(limit: settings.maxInboundConnections, logger: logger, metrics: exposition.metrics)
    let timeouts = CallerConnection.Limits(
        header: .nanoseconds(settings.clientHeaderTimeout.nanoseconds), body: .nanoseconds(settings.clientBodyTimeout.nanoseconds),
        keepalive: .nanoseconds(settings.keepaliveTimeout.nanoseconds))
    let server = HTTPServerBuilder { responder in
        GatewayHTTP1Channel(responder: responder, fastPath: fast, timeouts: timeouts, connections: inbound)
    }

    let onRunning = options.onServerRunning
    var app = Application(
        responder: responder,
        server: server,
        configuration: .init(address: .hostname(options.host, port: options.port), serverName: "switchboard"),
        onServerRunning: { channel in
            logger.info("gateway listening", metadata: ["address": "\(channel.localAddress?.description ?? "?")"])
            await onRunning?(channel.localAddress?.port ?? options.port)
        },
        logger: logger)
    if let audit { app.addServices(audit) }
    if let shared, let replica {
        app.addServices(shared, StatusSharing(holder: holder, store: shared, replica: replica, logger: logger))
    }
    app.addServices(
        ClientShutdownService(client: httpClient, upstream: upstreamClient, holder: holder, aggregate: aggregate),
        ConfigWatcher(holder: holder, logger: logger, handleSIGHUP: options.handleSIGHUP))
    logger.info("registry loaded", metadata: ["file": "\(options.configPath)", "connections": "\(holder.registry.connections.count)"])
    return app
}

/// The audit writer `gateway.audit` asks for (paths relative to connections.yaml's directory), or nil.
func auditLog(_ config: AuditConfig?, configPath: String, logger: Logger) throws -> AuditLog? {
    let base = ((configPath as NSString).deletingLastPathComponent as NSString)
    func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : base.appendingPathComponent(p) }
    let sqlite = config?.sqlite ?? ".switchboard/audit.sqlite"
    var settings = AuditLog.Settings(sqlitePath: sqlite == "off" ? nil : resolve(sqlite), jsonLines: config?.jsonl.map { $0 == "stdout" ? $0 : resolve($0) })
    if let r = config?.retention { settings.retention = r.duration }
    if let m = config?.maxRecords { settings.maxRecords = m }
    guard settings.sqlitePath != nil || settings.jsonLines != nil else { return nil }
    return try AuditLog(settings: settings, logger: logger)
}

/// Shuts the HTTP client and the plugins down after the server stopped; when shutdown starts,
/// ends the `/mcp` notification streams (they would otherwise hold the server open).
struct ClientShutdownService: Service {
    let client: HTTPClient
    let upstream: UpstreamClient
    let holder: RegistryHolder
    let aggregate: AggregateEndpoint

    func run() async throws {
        try? await gracefulShutdown()
        aggregate.endStreams()
        await upstream.shutdown()
        await holder.shutdown()
        try await client.shutdown()
    }
}
