import HTTPTypes
import Hummingbird
import NIOCore
import PluginAPI
import SwitchboardJSON

/// The pipeline's authorization step, for both drivers (``Governance`` runs it): the call's facts
/// — the MCP method, tool and arguments from the kept body, or the REST method and path —
/// against the connection's ``CompiledPolicy``. A refusal is worded for the caller: a tool
/// result with `isError` for `tools/call` (a model can explain it), a JSON-RPC error for another
/// MCP method, 403 `policy_denied` for REST.
struct PolicyCheck: Sendable {
    let exchange: ProxyExchange
    let policy: CompiledPolicy
    let facts: CallFacts

    static let metaKey = "switchboard/policy"

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
            let rpcID = facts.rpcID
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
                return Policy.decide(facts, policy, listing: true) == .allow
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
    /// What a call asks, read from the exchange and its kept body: an MCP request's method, tool
    /// and id by ``JSONRPCPeek`` (nothing else of the body is built), its arguments only when
    /// asked (a rule or the audit trail reads them).
    static func read(_ exchange: ProxyExchange, claims: [String: [String]], body: ByteBuffer?, arguments: Bool) -> CallFacts {
        var facts = CallFacts(connection: exchange.connection.name, claims: claims)
        guard exchange.target.prefix == .mcp else {
            facts.rest = (exchange.method.rawValue, String(exchange.target.remainder.isEmpty ? "/" : exchange.target.remainder))
            return facts
        }
        // A GET (the server-to-client stream) or DELETE (end of session) has no method.
        guard exchange.method == .post else {
            facts.mcp = .init(method: exchange.method.rawValue)
            return facts
        }
        // Read in place, the request's buffer borrowed (no copy of the body).
        let found = body?.withUnsafeReadableBytes { bytes in
            JSONRPCPeek(bytes).map { peek in (peek, arguments ? peek.arguments(in: bytes) : nil) }
        } ?? nil
        guard let (peek, parsedArguments) = found else {
            facts.mcp = .init(method: "")
            facts.malformed = "the body must be one JSON-RPC message (a JSON object; batches are not accepted where a policy or rate limit applies)"
            return facts
        }
        let method = peek.method ?? ""
        facts.rpcID = peek.id
        facts.mcp = .init(method: method, tool: method == "tools/call" ? peek.name : nil, arguments: parsedArguments)
        if peek.ambiguous {
            facts.malformed = "a member the gateway judges calls by (jsonrpc, method, id, params, params.name, params.arguments) appears twice"
        }
        return facts
    }
}
