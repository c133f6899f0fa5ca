import Foundation

/// One proxied call as the audit trail keeps it: who, where, what, the decision and the outcome.
/// Never a token, a cookie, a header or a body.
public struct AuditRecord: Sendable, Codable, Equatable {
    /// When the call ended (seconds since 1970).
    public var time: Double
    /// This call's id (also in no log line: audit and access log stay apart).
    public var requestID: String
    public var sub: String?
    public var email: String?
    public var connection: String
    /// `mcp` or `rest`.
    public var kind: String
    public var mcpMethod: String?
    public var tool: String?
    public var restMethod: String?
    public var path: String?
    /// `allowed`, `denied`, `rate_limited`, or `error` (a gateway refusal: the code says which).
    public var decision: String
    /// The policy rule or rate limit behind a refusal.
    public var rule: String?
    /// The status the caller got, and the gateway's error code when it was the gateway's.
    public var status: Int
    public var error: String?
    public var durationMS: Double
    public var stepUps: Int
    public var consentNeeded: Bool
    /// Which driver ran it (the access log's `via`).
    public var via: String

    enum CodingKeys: String, CodingKey {
        case time, sub, email, connection, kind, tool, path, decision, rule, status, error, via
        case requestID = "request_id"
        case mcpMethod = "mcp_method"
        case restMethod = "rest_method"
        case durationMS = "duration_ms"
        case stepUps = "step_ups"
        case consentNeeded = "consent_needed"
    }
}

/// A query over the trail (`switchboard audit`, `GET /api/audit`).
public struct AuditQuery: Sendable {
    public var user: String?
    public var connection: String?
    public var tool: String?
    public var decision: String?
    /// Seconds since 1970.
    public var since: Double?
    public var limit: Int = 1000

    public init(user: String? = nil, connection: String? = nil, tool: String? = nil, decision: String? = nil, since: Double? = nil, limit: Int = 1000) {
        self.user = user
        self.connection = connection
        self.tool = tool
        self.decision = decision
        self.since = since
        self.limit = limit
    }
}
