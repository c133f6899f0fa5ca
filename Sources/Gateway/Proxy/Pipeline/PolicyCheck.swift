import HTTPTypes
import Hummingbird
import NIOCore
import PluginAPI
import SwitchboardJSON

/// The pipeline's authorization step, for both drivers: after the caller is verified and
/// before any credential is fetched, the call's facts — the MCP method, tool and arguments
/// from the kept body, or the REST method and path — against ``Policy``. A refusal is worded
/// for the caller: a tool result with `isError` for `tools/call` (a model can explain it), a
/// JSON-RPC error for another MCP method, 403 `policy_denied` for REST.
struct PolicyCheck: Sendable {
    let exchange: ProxyExchange
    let facts: CallFacts
    /// The request's JSON-RPC id (MCP), for the refusal.
    let rpcID: JSONValue?

    static let metaKey = "switchboard/policy"

    /// Nil when no rule can apply to this connection (nothing to ask, nothing read).
    init?(_ exchange: ProxyExchange, caller: CallerIdentity, body: ByteBuffer?) {
        let registry = exchange.registry
        let connection = exchange.connection
        guard !Policy.isOpen(global: registry.plan.policies, connection: connection.plan.policy, name: connection.name) else { return nil }
        let read = CallFacts.read(exchange, caller: caller, body: body)
        self.exchange = exchange
        self.facts = read.facts
        self.rpcID = read.rpcID
    }

    var decision: PolicyDecision {
        Policy.decide(facts, global: exchange.registry.plan.policies, connection: exchange.connection.plan.policy)
    }

    /// Whether a `tools/list` answer must be filtered (some tool may be hidden).
    var filtersToolList: Bool { facts.mcp?.method == "tools/list" }

    /// The answer for a refused call.
    func refusal(rule: String?) -> Response {
        let connection = exchange.connection.name
        let because = rule.map { "the gateway's policy rule '\($0)'" } ?? "the connection's policy (it refuses what no rule allows)"
        var meta: [String: JSONValue] = ["decision": "deny", "connection": .string(connection)]
        if let rule { meta["rule"] = .string(rule) }
        if let mcp = facts.mcp {
            let body: JSONValue
            if mcp.method == "tools/call" {
                let text = "The call to '\(mcp.tool ?? "")' on '\(connection)' was refused by \(because). It was not sent."
                body = ["jsonrpc": "2.0", "id": rpcID ?? .null, "result": [
                    "content": [["type": "text", "text": .string(text)]], "isError": true, "_meta": [Self.metaKey: .object(meta)],
                ]]
            } else {
                var data = meta
                data["error"] = "policy_denied"
                body = ["jsonrpc": "2.0", "id": rpcID ?? .null, "error": [
                    "code": -32003, "message": .string("'\(mcp.method)' on '\(connection)' was refused by \(because)"), "data": .object(data),
                ]]
            }
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: body.encoded())))
        }
        var error = GatewayError(code: "policy_denied", status: .forbidden, message: "this call was refused by \(because)", connection: connection)
        if let rule { error.extra["rule"] = rule }
        return error.response()
    }

    /// A `tools/list` answer without the tools this caller may not call (JSON, or the events of an
    /// SSE answer); the answer unchanged when it is neither.
    func filteredToolList(_ body: ByteBuffer, contentType: String?) -> ByteBuffer {
        func filter(_ message: JSONValue) -> JSONValue {
            guard case .object(var fields) = message, case .object(var result)? = fields["result"], let tools = result["tools"]?.array else { return message }
            result["tools"] = .array(tools.filter { tool in
                guard let name = tool["name"]?.string else { return false }
                var facts = self.facts
                facts.mcp = .init(method: "tools/call", tool: name, arguments: nil)
                return Policy.decide(facts, global: exchange.registry.plan.policies, connection: exchange.connection.plan.policy, listing: true) == .allow
            })
            fields["result"] = .object(result)
            return .object(fields)
        }
        if contentType?.lowercased().hasPrefix("text/event-stream") == true {
            var parser = SSEParser()
            var out = ByteBuffer()
            for event in parser.feed(body.readableBytesView) {
                let data = JSONValue.parse(Array(event.utf8)).map { String(decoding: filter($0).encoded(), as: UTF8.self) } ?? event
                out.writeString("event: message\ndata: " + data + "\n\n")
            }
            return out
        }
        guard let message = JSONValue.parse(body.readableBytesView) else { return body }
        return ByteBuffer(bytes: filter(message).encoded())
    }
}

extension CallFacts {
    /// What a call asks, read from the exchange and its kept body (parsed here, once per step
    /// that needs it), and the request's JSON-RPC id (MCP).
    static func read(_ exchange: ProxyExchange, caller: CallerIdentity, body: ByteBuffer?) -> (facts: CallFacts, rpcID: JSONValue?) {
        var facts = CallFacts(connection: exchange.connection.name, claims: caller.claims)
        var rpcID: JSONValue?
        if exchange.target.prefix == .mcp {
            // A GET (the server-to-client stream) or DELETE (end of session) has no method.
            let message = body.flatMap { JSONValue.parse($0.readableBytesView) }
            rpcID = message?["id"]
            let method = message?["method"]?.string ?? (exchange.method == .post ? "" : exchange.method.rawValue)
            facts.mcp = .init(method: method, tool: method == "tools/call" ? message?["params"]?["name"]?.string : nil, arguments: message?["params"]?["arguments"])
        } else {
            facts.rest = (exchange.method.rawValue, String(exchange.target.remainder.isEmpty ? "/" : exchange.target.remainder))
        }
        return (facts, rpcID)
    }
}
