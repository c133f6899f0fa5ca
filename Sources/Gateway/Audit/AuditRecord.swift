import Foundation
import SwitchboardJSON

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
    /// The tool's arguments as JSON, when the connection keeps them (`audit.arguments`), with
    /// its redacted fields replaced by `"<redacted>"`.
    public var arguments: String?
    /// The writer's number for this record: its id is the process's prefix and this, in hex
    /// (made into text only where it is written, not per record).
    var serial: UInt64 = 0
    /// A `tools/call` body whose arguments the connection keeps (`audit.arguments`) and no step
    /// parsed: copied by the request path for the writer to parse them (off the request path);
    /// never stored. A copy, not the request's buffer: that is a slice of the connection's
    /// receive buffer, and holding it until the writer runs (up to 100 ms) kept NIO from reusing
    /// that buffer — a fresh one allocated for every read.
    var body: [UInt8]?
    /// The arguments as the pipeline read them, and the fields to redact (nil: not kept).
    var argumentsValue: JSONValue?
    var redacting: Set<String>?

    enum CodingKeys: String, CodingKey {
        case time, sub, email, connection, kind, tool, path, decision, rule, status, error, via, arguments
        case requestID = "request_id"
        case mcpMethod = "mcp_method"
        case restMethod = "rest_method"
        case durationMS = "duration_ms"
        case stepUps = "step_ups"
        case consentNeeded = "consent_needed"
    }

    public init(
        time: Double, requestID: String, sub: String? = nil, email: String? = nil, connection: String, kind: String, mcpMethod: String? = nil,
        tool: String? = nil, restMethod: String? = nil, path: String? = nil, decision: String, rule: String? = nil, status: Int, error: String? = nil,
        durationMS: Double, stepUps: Int, consentNeeded: Bool, via: String, arguments: String? = nil
    ) {
        self.arguments = arguments
        (self.time, self.requestID, self.sub, self.email, self.connection, self.kind) = (time, requestID, sub, email, connection, kind)
        (self.mcpMethod, self.tool, self.restMethod, self.path, self.decision, self.rule) = (mcpMethod, tool, restMethod, path, decision, rule)
        (self.status, self.error, self.durationMS, self.stepUps, self.consentNeeded, self.via) = (status, error, durationMS, stepUps, consentNeeded, via)
    }

    /// Fills in what the request path left to the writer: its serial (the id), and the arguments
    /// of a `tools/call` whose body it copied.
    mutating func complete(serial: UInt64) {
        self.serial = serial
        if let bytes = body {
            self.body = nil
            if redacting != nil, argumentsValue == nil { argumentsValue = JSONRPCPeek(bytes).flatMap { $0.arguments(in: bytes) } }
        }
        if let redacting, let value = argumentsValue {
            arguments = String(decoding: Self.redact(value, redacting).encoded(), as: UTF8.self)
        }
        argumentsValue = nil
        redacting = nil
    }

    /// `value` with every field named in `names`, at any depth, replaced by `"<redacted>"`.
    static func redact(_ value: JSONValue, _ names: Set<String>) -> JSONValue {
        switch value {
        case .object(let o):
            return .object(Dictionary(uniqueKeysWithValues: o.map { key, v in (key, names.contains(key) ? .string("<redacted>") : redact(v, names)) }))
        case .array(let a): return .array(a.map { redact($0, names) })
        default: return value
        }
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
