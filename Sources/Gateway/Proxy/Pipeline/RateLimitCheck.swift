import HTTPTypes
import Hummingbird
import NIOCore
import PluginAPI
import SwitchboardJSON

/// The pipeline's rate-limit step, after the policy's and before any credential: each of the
/// connection's `rate_limits:` takes one call from its bucket (keyed by the limit, and the user
/// and/or tool as configured). Counted once per call, by whichever driver gets there first
/// (``ProxyExchange/rateLimited``). Over a limit: 429 `rate_limited` with `Retry-After` and
/// `RateLimit-*` for REST; for MCP a tool result with `isError` saying when to try again (in
/// words and in `_meta`), so a model can tell the user.
enum RateLimitCheck {
    static let metaKey = "switchboard/rate_limit"
    /// The monotonic clock's origin for the limiter's seconds.
    private static let origin = ContinuousClock.now

    /// Counts the call if it was not yet; the refusal, if a limit is reached.
    static func count(_ exchange: ProxyExchange, caller: CallerIdentity, facts: CallFacts) -> RateLimiter.Refusal? {
        if let done = exchange.rateLimited { return done }
        let connection = exchange.connection
        let limits = connection.plan.rateLimits
        guard !limits.isEmpty else {
            exchange.rateLimited = .some(nil)
            return nil
        }
        let origin = Self.origin  // first: initialised lazily, it must not come after `now`
        let elapsed = ContinuousClock.now - origin
        let now = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        var refusal: RateLimiter.Refusal?
        for limit in limits {
            if let mcp = facts.mcp {
                guard mcp.method == "tools/call" else { continue }
                if let tool = limit.tool, !(mcp.tool.map(tool.matches) ?? false) { continue }
            }
            let key = RateLimiter.Key(limit: limit.name, user: limit.perUser ? caller.userKey : nil, tool: limit.perTool ? facts.mcp?.tool ?? "" : nil)
            if case .failure(let r) = connection.limiter.take(limit, key: key, now: now) {
                refusal = r
                break
            }
        }
        exchange.rateLimited = .some(refusal)
        return refusal
    }

    /// ``count(_:caller:facts:)`` against the replicas' shared buckets (`gateway.state`): one
    /// query per limit that applies. When the store does not answer, the process's own buckets
    /// decide (a limit per replica rather than none, or than refusing every call).
    static func countShared(_ exchange: ProxyExchange, caller: CallerIdentity, facts: CallFacts) async -> RateLimiter.Refusal? {
        if let done = exchange.rateLimited { return done }
        let connection = exchange.connection
        guard let store = connection.shared else { return count(exchange, caller: caller, facts: facts) }
        var refusal: RateLimiter.Refusal?
        for limit in connection.plan.rateLimits {
            if let mcp = facts.mcp {
                guard mcp.method == "tools/call" else { continue }
                if let tool = limit.tool, !(mcp.tool.map(tool.matches) ?? false) { continue }
            }
            let key = [connection.name, limit.name, limit.perUser ? caller.userKey : "*", limit.perTool ? facts.mcp?.tool ?? "" : "*"].joined(separator: "\u{0}")
            do {
                if case .refused(let wait) = try await store.takeRate(key, emission: .nanoseconds(limit.emissionNanoseconds), burst: limit.burst) {
                    refusal = RateLimiter.Refusal(limit: limit.name, retryAfter: wait, words: limit.words)
                    break
                }
            } catch {
                exchange.rateLimited = nil
                return count(exchange, caller: caller, facts: facts)
            }
        }
        exchange.rateLimited = .some(refusal)
        return refusal
    }

    /// The answer for a call over a limit.
    static func refusal(_ r: RateLimiter.Refusal, exchange: ProxyExchange) -> Response {
        let seconds = max(1, Int(r.retryAfter.rounded(.up)))
        let connection = exchange.connection.name
        if let facts = exchange.facts, facts.mcp != nil {
            let rpcID = facts.rpcID
            let text = "The rate limit '\(r.limit)' of '\(connection)' (\(r.words)) is reached: try again in \(seconds) second\(seconds == 1 ? "" : "s")."
            let body: JSONValue = ["jsonrpc": "2.0", "id": rpcID ?? .null, "result": [
                "content": [["type": "text", "text": .string(text)]], "isError": true,
                "_meta": [metaKey: ["limit": .string(r.limit), "retry_after_s": .number(Double(seconds)), "connection": .string(connection)]],
            ]]
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store", .retryAfter: String(seconds)],
                            body: .init(byteBuffer: ByteBuffer(bytes: body.encoded())))
        }
        var e = GatewayError(code: "rate_limited", status: .tooManyRequests, message: "the rate limit '\(r.limit)' (\(r.words)) is reached; try again in \(seconds) s", connection: connection)
        e.extra["limit"] = r.limit
        e.headers[.retryAfter] = String(seconds)
        e.headers[HTTPField.Name("RateLimit-Remaining")!] = "0"
        e.headers[HTTPField.Name("RateLimit-Reset")!] = String(seconds)
        e.headers[HTTPField.Name("RateLimit-Policy")!] = "\"\(r.limit)\"; q=\(r.words.split(separator: " ").first ?? "")"
        return e.response()
    }
}
