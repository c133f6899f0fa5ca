public import AsyncHTTPClient
public import Logging
public import Foundation

/// What a strategy gets besides the request: its connection, the agent identity, and the
/// gateway's shared services. Built once per connection at provision time.
public struct StrategyContext: Sendable {
    /// The connection this strategy serves.
    public var connection: ConnectionDescriptor
    /// The agent identity from `connections.yaml` (`agent:`), if configured.
    public var agent: AgentIdentity?
    /// The gateway's pooled HTTP client. Do not shut it down.
    public var httpClient: HTTPClient
    /// A logger labelled with the connection and plugin. Never log a token.
    public var logger: Logger
    /// The clock to use for every expiry decision (tests substitute it).
    public var clock: any GatewayClock
    /// A cache private to this connection (e.g. for authorization-server metadata).
    public var cache: PluginCache
    /// Looks up another connection of the registry by name (e.g. the referenced AS).
    public var lookup: @Sendable (String) -> ConnectionDescriptor?
    /// Tells the gateway that another connection (e.g. the authorization server a token was
    /// minted through) was used successfully, with what it issued valid until. Feeds its status card.
    public var reportUse: @Sendable (_ connection: String, _ validUntil: Date?) -> Void

    public init(
        connection: ConnectionDescriptor, agent: AgentIdentity?, httpClient: HTTPClient, logger: Logger,
        clock: any GatewayClock, cache: PluginCache, lookup: @escaping @Sendable (String) -> ConnectionDescriptor?,
        reportUse: @escaping @Sendable (String, Date?) -> Void = { _, _ in }
    ) {
        self.reportUse = reportUse
        self.connection = connection
        self.agent = agent
        self.httpClient = httpClient
        self.logger = logger
        self.clock = clock
        self.cache = cache
        self.lookup = lookup
    }
}

/// What a factory sees while validating a config: pure facts, no I/O.
public struct ValidationContext: Sendable {
    /// The connection being validated.
    public var connection: ConnectionDescriptor
    /// The agent identity, if `connections.yaml` declares one.
    public var agent: AgentIdentity?
    /// Looks up another connection by name.
    public var lookup: @Sendable (String) -> ConnectionDescriptor?

    public init(connection: ConnectionDescriptor, agent: AgentIdentity?, lookup: @escaping @Sendable (String) -> ConnectionDescriptor?) {
        self.connection = connection
        self.agent = agent
        self.lookup = lookup
    }
}
