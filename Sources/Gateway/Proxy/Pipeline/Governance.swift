import Hummingbird
import NIOCore
import PluginAPI
import SwitchboardJSON

/// The pipeline's governance steps, in order, for both drivers: what the call asks is read
/// from its body once (into ``ProxyExchange/facts``), then the policy (``PolicyCheck``), then
/// the rate limits (``RateLimitCheck``) — after the caller is verified and before any
/// credential is fetched. The event-loop driver hands every verdict but a plain pass to the
/// async driver, which asks again and words the refusal (the policy is pure, the rate limits
/// are counted once per call). With replicas the rate limits are counted in the shared store
/// (global), by the async driver only.
enum Governance {
    enum Verdict {
        /// Go on; with the policy's check when a `tools/list` answer must be filtered.
        case pass(PolicyCheck?)
        case refuse(Refusal)
        /// The policy lets it pass; the rate limits are the replicas' (`gateway.state`) and are
        /// counted in the shared store, which only the async driver waits for (``countShared``).
        case countShared(PolicyCheck?)
    }

    enum Refusal {
        /// An MCP body that cannot be judged (``CallFacts/malformed``).
        case malformed(String)
        /// An MCP body too large to be kept, so too large to be judged: refused, never passed unread.
        case unread
        case policy(PolicyCheck, rule: String?)
        case rateLimited(RateLimiter.Refusal)
    }

    /// `body`: the kept body; `unreadBody`: a body the driver did not keep (too large).
    static func judge(_ exchange: ProxyExchange, caller: CallerIdentity, body: ByteBuffer?, unreadBody: Bool) -> Verdict {
        let policy = exchange.registry.policy(for: exchange.connection)
        let limited = !exchange.connection.plan.rateLimits.isEmpty
        guard policy != nil || limited else { return .pass(nil) }
        if exchange.target.prefix == .mcp, unreadBody { return .refuse(.unread) }
        let facts = exchange.facts ?? CallFacts.read(exchange, claims: caller.claims, body: body, arguments: policy?.readsArguments == true)
        exchange.facts = facts
        if let why = facts.malformed { return .refuse(.malformed(why)) }
        var check: PolicyCheck?
        if let policy {
            let c = PolicyCheck(exchange: exchange, policy: policy, facts: facts)
            if case .deny(let rule) = Policy.decide(facts, policy) { return .refuse(.policy(c, rule: rule)) }
            check = c.filtersToolList ? c : nil
        }
        if limited, exchange.connection.shared != nil, exchange.rateLimited == nil { return .countShared(check) }
        if let refused = RateLimitCheck.count(exchange, caller: caller, facts: facts) { return .refuse(.rateLimited(refused)) }
        return .pass(check)
    }

    /// The rest of a ``Verdict/countShared(_:)`` verdict: the rate limits counted across replicas.
    static func countShared(_ exchange: ProxyExchange, caller: CallerIdentity, check: PolicyCheck?) async -> Verdict {
        guard let facts = exchange.facts else { return .pass(check) }
        if let refused = await RateLimitCheck.countShared(exchange, caller: caller, facts: facts) { return .refuse(.rateLimited(refused)) }
        return .pass(check)
    }

    /// The answer for a refusal (and what the access log and audit record name as its error).
    static func answer(_ refusal: Refusal, exchange: ProxyExchange) -> (response: Response, error: String) {
        let connection = exchange.connection.name
        let rpcID = exchange.facts?.rpcID
        switch refusal {
        case .malformed(let why):
            let body: JSONValue = ["jsonrpc": "2.0", "id": rpcID ?? .null, "error": [
                "code": -32600, "message": .string(why), "data": ["error": "invalid_request", "connection": .string(connection)],
            ]]
            return (Response(status: .badRequest, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                             body: .init(byteBuffer: ByteBuffer(bytes: body.encoded()))), "invalid_request")
        case .unread:
            let e = GatewayError(
                code: "policy_denied", status: .forbidden,
                message: "this connection's policy judges each call by its body, and this body is larger than max_replay_body", connection: connection)
            return (e.response(), e.code)
        case .policy(let check, let rule):
            exchange.refusedBy = rule
            return (check.refusal(rule: rule), "policy_denied")
        case .rateLimited(let r):
            exchange.refusedBy = r.limit
            return (RateLimitCheck.refusal(r, exchange: exchange), "rate_limited")
        }
    }
}
