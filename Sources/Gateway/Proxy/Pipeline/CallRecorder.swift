import Foundation
import HTTPTypes
import Logging
import PluginAPI
import SwitchboardJSON

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
        // Each read once: reading a member through the optional copies the whole struct.
        let facts = exchange.facts
        let mcp = facts?.mcp, rest = facts?.rest
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
            connection: exchange.connection.name, kind: isREST ? "rest" : "mcp", mcpMethod: mcp?.method,
            tool: mcp?.tool, restMethod: rest?.method ?? (isREST ? exchange.method.rawValue : nil),
            path: rest?.path ?? (isREST ? String(exchange.target.remainder) : nil), decision: decision,
            rule: exchange.refusedBy, status: status, error: error,
            durationMS: Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15, stepUps: exchange.stepUps,
            consentNeeded: error == "interaction_required", via: exchange.driver.rawValue)
        let redacting = exchange.connection.plan.auditArgumentsRedacting
        record.redacting = redacting
        record.argumentsValue = redacting == nil ? nil : mcp?.arguments
        if !isREST, facts == nil, exchange.method != .post {
            record.mcpMethod = exchange.method.rawValue  // a GET (the server's stream) or DELETE (the session's end), as CallFacts names it
        } else if !isREST, facts == nil || (redacting != nil && record.argumentsValue == nil), let body = exchange.auditBody {
            // No step read the body: its method and tool are peeked here, in place, while its bytes
            // are still in this core's cache. (A copy for the writer to peek cost more, all told:
            // the copy, a cross-thread free, and the writer's peek of cold bytes — a fifth of its time.)
            body.withUnsafeReadableBytes { bytes in
                guard let peek = JSONRPCPeek(bytes) else { return }
                if record.mcpMethod == nil || record.mcpMethod == "" { record.mcpMethod = peek.method }
                if record.tool == nil, record.mcpMethod == "tools/call" { record.tool = peek.name }
            }
            // Arguments the connection keeps are parsed by the writer, off the request path.
            if redacting != nil, record.argumentsValue == nil, record.mcpMethod == "tools/call" {
                record.body = Array(body.readableBytesView)
            }
        }
        return record
    }
}
