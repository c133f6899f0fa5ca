import Foundation
import NIOCore
import SwitchboardJSON
import SwitchboardTesting

/// A small MCP server (Streamable HTTP, JSON answers, 2025-11-25 handshake with a session id)
/// on a free loopback port: `initialize`, `notifications/initialized`, `tools/list` with the
/// given tool names, `tools/call` answering "`label` ran `tool`". Keeps every request, so a test
/// sees which server a call reached.
final class MCPStandIn: Sendable {
    /// What the stack starts: a gateway connection `name` in front of a server offering `tools`.
    struct Spec: Sendable {
        var name: String
        var tools: [String]
    }

    let label: String
    private let upstream: ScriptedUpstream

    private init(label: String, upstream: ScriptedUpstream) {
        self.label = label
        self.upstream = upstream
    }

    /// The MCP endpoint.
    var url: String { upstream.baseURL + "/mcp" }

    /// The JSON-RPC messages received, in order.
    var messages: [JSONValue] { upstream.requests.compactMap { JSONValue.parse($0.body.readableBytesView) } }
    /// Every `tools/call`: the tool's name and arguments.
    var toolCalls: [(name: String, arguments: JSONValue)] {
        messages.filter { $0["method"]?.string == "tools/call" }.map { ($0["params"]?["name"]?.string ?? "", $0["params"]?["arguments"] ?? nil) }
    }

    static func start(label: String, tools: [String]) async throws -> MCPStandIn {
        let sessionID = "session-" + label
        let upstream = try await ScriptedUpstream.start { request in
            guard request.method == "POST", request.path == "/mcp", let message = JSONValue.parse(request.body.readableBytesView),
                  let method = message["method"]?.string
            else { return .text("MCP over POST /mcp only", status: 405) }
            guard let id = message["id"] else { return ScriptedUpstream.Reply(status: 202, content: .whole(ByteBuffer())) }  // a notification
            let result: JSONValue
            switch method {
            case "initialize":
                result = [
                    "protocolVersion": message["params"]?["protocolVersion"] ?? "2025-11-25", "capabilities": ["tools": [:]],
                    "serverInfo": ["name": .string(label), "version": "1.0.0"],
                ]
            case "tools/list":
                result = ["tools": .array(tools.map { name in
                    ["name": .string(name), "description": .string("\(name) at \(label)"), "inputSchema": ["type": "object", "properties": [:]]]
                })]
            case "tools/call":
                let name = message["params"]?["name"]?.string ?? ""
                result = ["content": [["type": "text", "text": .string("\(label) ran \(name)")]], "isError": false]
            default:
                return json(["jsonrpc": "2.0", "id": id, "error": ["code": -32601, "message": .string("no method \(method)")]], sessionID: sessionID)
            }
            return json(["jsonrpc": "2.0", "id": id, "result": result], sessionID: sessionID)
        }
        return MCPStandIn(label: label, upstream: upstream)
    }

    func stop() async { await upstream.stop() }

    private static func json(_ value: JSONValue, sessionID: String) -> ScriptedUpstream.Reply {
        ScriptedUpstream.Reply(
            headers: [("Content-Type", "application/json"), ("Mcp-Session-Id", sessionID)], content: .whole(ByteBuffer(bytes: value.encoded())))
    }
}
