import Foundation
import HTTPTypes
import NIOCore
import SwitchboardTesting

/// An MCP-shaped upstream that keeps the headers of every request it receives and answers
/// each JSON-RPC request with an empty tool result. Shows what the gateway injects. A script
/// on ``ScriptedUpstream``.
final class RecordingUpstream: Sendable {
    let server: ScriptedUpstream

    var baseURL: String { server.baseURL }
    /// The headers of every `POST /mcp`, in order.
    var requests: [HTTPFields] {
        server.requests.filter { $0.method == "POST" && $0.path == "/mcp" }.map { request in
            HTTPFields(request.headers.compactMap { header in HTTPField.Name(header.name).map { HTTPField(name: $0, value: header.value) } })
        }
    }

    private init(server: ScriptedUpstream) {
        self.server = server
    }

    static func start() async throws -> RecordingUpstream {
        RecordingUpstream(server: try await ScriptedUpstream.start { request in
            guard request.method == "POST" else { return .text("Not Found", status: 404) }
            let message = (try? JSONSerialization.jsonObject(with: Data(request.body.readableBytesView))) as? [String: Any]
            let id = message?["id"] ?? NSNull()
            switch request.path {
            case "/mcp":
                return json(["jsonrpc": "2.0", "id": id, "result": ["content": [["type": "text", "text": "recorded"]], "isError": false]])
            case "/scoped":
                // Reports a missing scope the way some MCP servers do: not as HTTP 403 but as a tool
                // result whose text is the insufficient_scope JSON (PROTOCOLS.md E), unless the token
                // carries mcp:tools:manage.
                let token = request.header("authorization").map { String($0.dropFirst("Bearer ".count)) } ?? ""
                let scopes = (try? DecodedJWT(token))?.scopes ?? []
                let result: [String: Any]
                if scopes.contains("mcp:tools:manage") {
                    result = ["content": [["type": "text", "text": "done with manage"]], "isError": false]
                } else {
                    let inner = #"{"error":"insufficient_scope","required_scopes":["mcp:connect","mcp:tools:read","mcp:tools:manage"],"www_authenticate":"Bearer error=\"insufficient_scope\", scope=\"mcp:connect mcp:tools:read mcp:tools:manage\""}"#
                    result = ["content": [["type": "text", "text": inner]], "isError": true]
                }
                return json(["jsonrpc": "2.0", "id": id, "result": result])
            default:
                return .text("Not Found", status: 404)
            }
        })
    }

    private static func json(_ object: [String: Any]) -> ScriptedUpstream.Reply {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        return ScriptedUpstream.Reply(headers: [("Content-Type", "application/json")], content: .whole(ByteBuffer(bytes: data)))
    }
}

/// A "token endpoint" that answers every POST with 200 and an HTML page instead of JSON. A
/// script on ``ScriptedUpstream``.
enum GarbageTokenEndpoint {
    static func start() async throws -> ScriptedUpstream {
        try await ScriptedUpstream.start { request in
            guard request.method == "POST", request.path == "/token" else { return .text("Not Found", status: 404) }
            return ScriptedUpstream.Reply(
                headers: [("Content-Type", "text/html")], content: .whole(ByteBuffer(string: "<html><body>Service temporarily moved</body></html>")))
        }
    }
}
