import Foundation
import HTTPTypes
import Logging
import PluginAPI

/// What a finished call leaves behind, whichever driver ran it: the connection's activity (the
/// status panel: LIVE, failures, the user's state) and one access-log line.
struct CallRecorder: Sendable {
    let logger: Logger
    let clock: any GatewayClock
    /// The audit trail, when on: one record per call, handed over without waiting.
    var audit: AuditLog?

    /// What an upstream answer says of the connection (and of the user's state on it).
    func answered(_ exchange: ProxyExchange, status: Int) {
        guard let caller = exchange.caller, let credential = exchange.credential else { return }
        let connection = exchange.connection
        let now = clock.now()
        if status >= 500 {
            connection.activity.recordFailure(at: now, code: "upstream_status", message: "the upstream answered \(status)", upstream: true)
        } else if status == 401 || status == 403 {
            connection.activity.recordFailure(at: now, code: "upstream_rejected_credential", message: "the upstream answered \(status)", upstream: true)
            if connection.tracksUsers {
                connection.activity.recordUser(caller.userKey, .init(state: "error", at: now, error: "upstream_rejected_credential"))
            }
        } else {
            connection.activity.recordSuccess(at: now, credentialExpiresAt: credential.expiresAt)
            // The per-user view lists only connections whose credential is per user.
            if connection.tracksUsers {
                connection.activity.recordUser(caller.userKey, .init(state: "live", at: now, credentialExpiresAt: credential.expiresAt))
            }
        }
    }

    /// A call that ends in a gateway error. Only failures of the connection itself (upstream,
    /// credential) count against it; a caller's bad token or oversized body says nothing about it.
    func failed(_ exchange: ProxyExchange, error: GatewayError) {
        if error.status.code >= 500, error.code.hasPrefix("upstream_") {
            exchange.connection.activity.recordFailure(at: clock.now(), code: error.code, message: error.message, upstream: true)
        }
        log(exchange, status: Int(error.status.code), error: error.code)
    }

    /// The access log's line for one call; never a token, never the query string. `via` names
    /// the driver (``ProxyExchange/Driver``): the only place the two drivers may differ.
    func log(_ exchange: ProxyExchange, status: Int, bytes: Int? = nil, error: String? = nil) {
        if error == "policy_denied" { exchange.connection.activity.recordDenied() }
        if error == "rate_limited" { exchange.connection.activity.recordRateLimited() }
        if let audit { audit.record(auditRecord(exchange, status: status, error: error)) }
        let elapsed = ContinuousClock.now - exchange.started
        exchange.connection.activity.metrics?.call(method: exchange.method.rawValue, status: status, duration: elapsed)
        let span = exchange.span
        CallTracing.end(exchange, status: status, error: error)
        guard logger.logLevel <= .info else { return }  // build nothing when the line is filtered out
        let traced = span.flatMap(CallTracing.logIDs)
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        var metadata: Logger.Metadata = [
            "connection": "\(exchange.connection.name)", "method": "\(exchange.method.rawValue)", "status": "\(status)",
            "duration_ms": "\(String(format: "%.2f", ms))", "via": "\(exchange.driver.rawValue)",
        ]
        if let bytes { metadata["bytes"] = "\(bytes)" }
        if let error { metadata["error"] = "\(error)" }
        if let traced {
            metadata["trace_id"] = "\(traced.traceID)"
            metadata["span_id"] = "\(traced.spanID)"
        }
        logger.info("proxied", metadata: metadata)
    }

    /// The call's audit record: who, where, what (from ``ProxyExchange/facts``), the decision
    /// and the outcome. Never a token or a body.
    func auditRecord(_ exchange: ProxyExchange, status: Int, error: String?) -> AuditRecord {
        let elapsed = ContinuousClock.now - exchange.started
        // What the call asked: the steps' facts, else read here by the same rule (an MCP body
        // peeked in place while its bytes are in this core's cache; a copy for the writer to peek
        // cost more, all told: the copy, a cross-thread free, and a peek of cold bytes).
        let facts = exchange.facts ?? CallFacts.read(exchange, claims: [:], body: exchange.auditBody, arguments: false)
        // Each read once (a member read through a struct copies the struct).
        let mcp = facts.mcp, rest = facts.rest
        let caller = exchange.caller
        let isREST = exchange.target.prefix == .rest
        let decision: String
        switch error {
        case nil: decision = "allowed"
        case "policy_denied": decision = "denied"
        case "rate_limited": decision = "rate_limited"
        default: decision = "error"
        }
        var record = AuditRecord(
            time: Date().timeIntervalSince1970, requestID: "", sub: caller?.subject, email: caller?.email,
            connection: exchange.connection.name, kind: isREST ? "rest" : "mcp", mcpMethod: mcp.flatMap { $0.method.isEmpty ? nil : $0.method },
            tool: mcp?.tool, restMethod: rest?.method, path: rest?.path, decision: decision,
            rule: exchange.refusedBy, status: status, error: error,
            durationMS: Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15, stepUps: exchange.stepUps,
            consentNeeded: error == "interaction_required", via: exchange.driver.rawValue)
        let redacting = exchange.connection.plan.auditArgumentsRedacting
        record.redacting = redacting
        record.argumentsValue = redacting == nil ? nil : mcp?.arguments
        // Arguments the connection keeps and no step parsed are parsed by the writer, off the request path.
        if redacting != nil, record.argumentsValue == nil, mcp?.method == "tools/call", let body = exchange.auditBody {
            record.body = Array(body.readableBytesView)
        }
        return record
    }
}
