public import PluginAPI

/// `connections.yaml` as written: the YAML-facing types, decoded strictly. The runtime
/// counterparts (``Registry``, ``Connection``) are built from these after validation.
public struct RegistryFileConfig: Decodable, Sendable {
    /// Schema version; only `1` exists.
    public var version: Int
    /// Gateway-wide limits and timeouts.
    public var gateway: GatewaySettingsConfig?
    /// The identity the gateway acts as toward authorization servers.
    public var agent: AgentConfig?
    /// Who may call the gateway.
    public var users: UsersConfig
    /// The managed connections.
    public var connections: [ConnectionConfig]
    /// Named subsets of the merged `/mcp` tools, each served at `/mcp/v/{name}`.
    public var virtualServers: [VirtualServerConfig]?
    /// Authorization rules for every connection, evaluated before each connection's own
    /// (read from the node by the validation, for line:column in every message).
    public var policies: ConfigNode?

    enum CodingKeys: String, CodingKey {
        case version, gateway, agent, users, connections, policies
        case virtualServers = "virtual_servers"
    }
}

/// One entry of `virtual_servers:`: globs over the merged names (`{connection}__{tool}`).
public struct VirtualServerConfig: Decodable, Sendable {
    public var name: String
    public var title: String?
    public var include: [String]
    public var exclude: [String]?
}

/// `agent:` — the OAuth client the gateway acts as (used by the `idjag` and `oauth-sts` plugins).
public struct AgentConfig: Decodable, Sendable, Equatable {
    public var id: String
    public var privateKey: Secret?
    public var keyID: String

    enum CodingKeys: String, CodingKey {
        case id
        case privateKey = "private_key"
        case keyID = "key_id"
    }
}

/// `users:` — the issuer and audience of the ID tokens the agent presents.
public struct UsersConfig: Decodable, Sendable, Equatable {
    /// The OIDC issuer (discovery at `{issuer}/.well-known/openid-configuration`).
    public var issuer: String
    /// The client id the ID tokens are issued to (`aud`).
    public var audience: String
    /// Fetch keys from here instead of discovering `jwks_uri`.
    public var jwksURI: String?
    /// Accepted signature algorithms (default RS256, ES256).
    public var algorithms: [String]?
    /// Allowed clock skew (default 60s).
    public var clockSkew: ConfigDuration?

    enum CodingKeys: String, CodingKey {
        case issuer, audience, algorithms
        case jwksURI = "jwks_uri"
        case clockSkew = "clock_skew"
    }
}

/// One entry of `connections:`.
public struct ConnectionConfig: Decodable, Sendable {
    public var name: String
    public var kind: String
    public var title: String?
    public var enabled: Bool?
    public var upstream: String?
    public var issuer: String?
    public var resource: String?
    public var route: String?
    public var registrationID: String?
    public var auth: ConfigNode?
    public var timeouts: TimeoutsConfig?
    public var maxRequestBody: ConfigByteSize?
    /// `{default: allow|deny, rules: [...]}`: who may call what here (see ``PolicyRule``).
    public var policy: ConfigNode?
    /// How often (see ``RateLimit``).
    public var rateLimits: [RateLimitConfig]?
    /// What the audit trail keeps of this connection's calls beyond the defaults.
    public var audit: ConnectionAuditConfig?

    enum CodingKeys: String, CodingKey {
        case name, kind, title, enabled, upstream, issuer, resource, route, auth, timeouts, policy, audit
        case rateLimits = "rate_limits"
        case registrationID = "registration_id"
        case maxRequestBody = "max_request_body"
    }
}

/// A connection's `audit:`: keep the tool arguments of its MCP calls (off by default), with the
/// named fields redacted wherever they occur.
public struct ConnectionAuditConfig: Decodable, Sendable, Equatable {
    public var arguments: Bool?
    public var redact: [String]?
}

/// One of a connection's `rate_limits:`.
public struct RateLimitConfig: Decodable, Sendable, Equatable {
    /// Named in refusals.
    public var name: String
    /// Calls allowed per `per`, sustained.
    public var requests: Int
    public var per: ConfigDuration
    /// Calls allowed at once (default: `requests`).
    public var burst: Int?
    /// What a bucket is kept per, besides the connection: `user` (default), `tool`, or both.
    public var key: [String]?
    /// Only calls of these tools count (MCP; a glob).
    public var tool: String?
}

/// `gateway:` — limits, timeouts and reload settings.
public struct GatewaySettingsConfig: Decodable, Sendable, Equatable {
    public var limits: LimitsConfig?
    public var timeouts: TimeoutsConfig?
    public var reload: ReloadConfig?
    public var audit: AuditConfig?
    /// State shared by replicas: `postgres://user@host:port/database` (read at start). Absent:
    /// everything stays in the process.
    public var state: String?
    /// The database password when the URL has none (a secret: `file:PATH`).
    public var statePassword: Secret?
    /// The key(s) sealing credentials at rest (secrets, e.g. `file:PATH`): one, or a list whose
    /// first seals and all open (rotation).
    public var stateKey: SecretList?

    enum CodingKeys: String, CodingKey {
        case limits, timeouts, reload, audit, state
        case statePassword = "state_password"
        case stateKey = "state_key"
    }
}

/// One secret or a list of them.
public struct SecretList: Decodable, Sendable, Equatable {
    public var secrets: [Secret]

    public init(from decoder: any Decoder) throws {
        if let list = try? [Secret](from: decoder) {
            secrets = list
        } else {
            secrets = [try Secret(from: decoder)]
        }
    }
}

/// `gateway.audit:` — the audit trail (read at start).
public struct AuditConfig: Decodable, Sendable, Equatable {
    /// The SQLite file (relative to connections.yaml's directory), or `off`. Default `.switchboard/audit.sqlite`.
    public var sqlite: String?
    /// Also as JSON lines: a file, or `stdout`.
    public var jsonl: String?
    /// Records older than this are dropped (default 30d).
    public var retention: ConfigDuration?
    /// At most this many records are kept, the oldest dropped first (default 1,000,000).
    public var maxRecords: Int?
    /// The bearer token `GET /api/audit` takes (a secret: `file:PATH`); without it the API is off.
    public var adminToken: Secret?

    enum CodingKeys: String, CodingKey {
        case sqlite, jsonl, retention
        case maxRecords = "max_records"
        case adminToken = "admin_token"
    }
}

/// `gateway.limits:`.
public struct LimitsConfig: Decodable, Sendable, Equatable {
    public var maxRequestBody: ConfigByteSize?
    public var maxHeaderCount: Int?
    public var maxHeaderBytes: ConfigByteSize?
    public var maxConnectionsPerUpstream: Int?
    public var maxReplayBody: ConfigByteSize?
    public var maxInboundConnections: Int?

    enum CodingKeys: String, CodingKey {
        case maxInboundConnections = "max_inbound_connections"
        case maxReplayBody = "max_replay_body"
        case maxRequestBody = "max_request_body"
        case maxHeaderCount = "max_header_count"
        case maxHeaderBytes = "max_header_bytes"
        case maxConnectionsPerUpstream = "max_connections_per_upstream"
    }
}

/// `timeouts:` (gateway-wide, or per connection for `response`).
public struct TimeoutsConfig: Decodable, Sendable, Equatable {
    public var connect: ConfigDuration?
    public var response: ConfigDuration?
    public var idle: ConfigDuration?
    /// The caller's side (gateway-wide only, read at start): a request head, the silence
    /// between two reads of a request body, an idle keep-alive connection.
    public var clientHeader: ConfigDuration?
    public var clientBody: ConfigDuration?
    public var keepalive: ConfigDuration?

    enum CodingKeys: String, CodingKey {
        case connect, response, idle, keepalive
        case clientHeader = "client_header"
        case clientBody = "client_body"
    }

    /// Keys other than `response` (they are gateway-wide).
    var setsGatewayWideKeys: Bool { connect != nil || idle != nil || clientHeader != nil || clientBody != nil || keepalive != nil }
}

/// `gateway.reload:`.
public struct ReloadConfig: Decodable, Sendable, Equatable {
    /// Watch the file for edits (default true).
    public var watch: Bool?
    /// How often to look (default 500ms).
    public var interval: ConfigDuration?
}
