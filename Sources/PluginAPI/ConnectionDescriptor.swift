/// The kinds of managed connection a registry holds.
public enum ConnectionKind: String, Sendable, Hashable, CaseIterable, Decodable {
    /// An OAuth authorization server that other connections reference (e.g. the Todo MCP AS).
    case authorizationServer = "authorization_server"
    /// A REST API reached through `/rest/{name}/…`.
    case application
    /// An MCP server (Streamable HTTP) reached through `/mcp/{name}`.
    case mcpServer = "mcp_server"
}

/// What a plugin may know about a connection: resolved, validated, no secrets.
public struct ConnectionDescriptor: Sendable, Hashable {
    /// Unique name (`todo0`).
    public var name: String
    public var kind: ConnectionKind
    /// Human title for the panel.
    public var title: String
    /// The upstream base URL (`application`, `mcp_server`).
    public var upstream: String?
    /// The resource indicator (RFC 8707) the upstream expects tokens for; defaults to `upstream`.
    public var resourceIndicator: String?
    /// The issuer URL (`authorization_server` only).
    public var issuer: String?
    /// The gateway route (`/mcp/todo0`, `/rest/github`).
    public var route: String?
    /// An identifier the IdP knows this connection by (e.g. Okta's managed-connection id).
    public var registrationID: String?

    public init(
        name: String, kind: ConnectionKind, title: String, upstream: String? = nil, resourceIndicator: String? = nil,
        issuer: String? = nil, route: String? = nil, registrationID: String? = nil
    ) {
        self.name = name
        self.kind = kind
        self.title = title
        self.upstream = upstream
        self.resourceIndicator = resourceIndicator
        self.issuer = issuer
        self.route = route
        self.registrationID = registrationID
    }
}

/// The identity the gateway acts as toward authorization servers (the agent's OAuth client).
public struct AgentIdentity: Sendable, Equatable {
    /// The agent's client id (`iss`/`sub` of its client assertions).
    public var id: String
    /// The `kid` of its signing key.
    public var keyID: String
    /// The PEM private key (RSA ≥ 2048 or P-256). Redacted in descriptions.
    public var privateKey: Secret?

    public init(id: String, keyID: String, privateKey: Secret?) {
        self.id = id
        self.keyID = keyID
        self.privateKey = privateKey
    }
}
