import PluginAPI

/// Gateway-wide limits and timeouts with their defaults, resolved from `gateway:`.
public struct GatewaySettings: Sendable, Equatable {
    /// Largest accepted request body (413 above it). Default 10 MiB.
    public var maxRequestBody: Int = 10 << 20
    /// Most request header fields accepted (431 above it). Default 100.
    public var maxHeaderCount: Int = 100
    /// Largest total size of request header names and values (431 above it). Default 32 KiB.
    public var maxHeaderBytes: Int = 32 << 10
    /// Request bodies up to this size are kept so a request can be replayed after a token
    /// refresh or a scope step-up (larger ones stream without replay). Default 1 MiB.
    public var maxReplayBody: Int = 1 << 20
    /// Pooled connections per upstream host. Default 64.
    public var maxConnectionsPerUpstream: Int = 64
    /// Upstream TCP connect timeout. Default 5 s.
    public var connectTimeout: Duration = .seconds(5)
    /// Time allowed for the upstream's response head (504 after it). Default 30 s.
    public var responseTimeout: Duration = .seconds(30)
    /// Longest silence allowed inside a response body (SSE streams included). Default 300 s.
    public var idleTimeout: Duration = .seconds(300)
    /// Open connections from callers at once; one more is closed as soon as it is accepted
    /// (read at start). Default 10,000.
    public var maxInboundConnections: Int = 10_000
    /// A caller's request head must arrive whole within this, counted from its first byte (or
    /// from the connection's start for its first request); 408 `request_timeout` and close.
    /// Default 60 s (nginx's `client_header_timeout`).
    public var clientHeaderTimeout: Duration = .seconds(60)
    /// Longest silence while the gateway waits for more of a request body; 408 and close.
    /// Default 60 s (nginx's `client_body_timeout`).
    public var clientBodyTimeout: Duration = .seconds(60)
    /// An idle keep-alive connection (no request under way) is closed after this. Default 75 s
    /// (nginx's `keepalive_timeout`).
    public var keepaliveTimeout: Duration = .seconds(75)
    /// Watch connections.yaml for edits. Default true.
    public var watch: Bool = true
    /// Polling interval of the watch. Default 500 ms.
    public var watchInterval: Duration = .milliseconds(500)
    /// `gateway.audit` as written (resolved against the file's directory at start).
    public var audit: AuditConfig?
    /// `gateway.state` (read at start): the replicas' shared state, or nil.
    public var state: SharedStateSettings?

    public init() {}

    init(_ config: GatewaySettingsConfig?) {
        self.init()
        guard let config else { return }
        if let l = config.limits {
            if let v = l.maxRequestBody { maxRequestBody = v.bytes }
            if let v = l.maxHeaderCount { maxHeaderCount = v }
            if let v = l.maxHeaderBytes { maxHeaderBytes = v.bytes }
            if let v = l.maxConnectionsPerUpstream { maxConnectionsPerUpstream = v }
            if let v = l.maxReplayBody { maxReplayBody = v.bytes }
            if let v = l.maxInboundConnections { maxInboundConnections = v }
        }
        if let url = config.state {
            state = SharedStateSettings(url: url, password: config.statePassword, keys: config.stateKey?.secrets ?? [])
        }
        if let t = config.timeouts {
            if let v = t.connect { connectTimeout = v.duration }
            if let v = t.response { responseTimeout = v.duration }
            if let v = t.idle { idleTimeout = v.duration }
            if let v = t.clientHeader { clientHeaderTimeout = v.duration }
            if let v = t.clientBody { clientBodyTimeout = v.duration }
            if let v = t.keepalive { keepaliveTimeout = v.duration }
        }
        audit = config.audit
        if let r = config.reload {
            if let v = r.watch { watch = v }
            if let v = r.interval { watchInterval = v.duration }
        }
    }
}
