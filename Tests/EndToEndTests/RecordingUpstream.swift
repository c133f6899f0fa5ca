import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization
import SwitchboardTesting

/// An MCP-shaped upstream that keeps the headers of every request it receives and answers
/// each JSON-RPC request with an empty tool result. Shows what the gateway injects.
final class RecordingUpstream: Sendable {
    let server: RunningServer
    private let seen: HeaderLog

    var baseURL: String { server.baseURL }
    var requests: [HTTPFields] { seen.all }

    private init(server: RunningServer, seen: HeaderLog) {
        self.server = server
        self.seen = seen
    }

    static func start() async throws -> RecordingUpstream {
        let log = HeaderLog()
        let router = Router(context: BasicRequestContext.self)
        router.post("/mcp") { request, _ in
            log.append(request.headers)
            let buffer = try await request.body.collect(upTo: 1 << 20)
            let message = (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any]
            let id = message?["id"] ?? NSNull()
            let answer: [String: Any] = ["jsonrpc": "2.0", "id": id, "result": ["content": [["type": "text", "text": "recorded"]], "isError": false]]
            let data = try JSONSerialization.data(withJSONObject: answer)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        // Reports a missing scope the way some MCP servers do: not as HTTP 403 but as a tool
        // result whose text is the insufficient_scope JSON (PROTOCOLS.md E), unless the token
        // carries mcp:tools:manage.
        router.post("/scoped") { request, _ in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            let message = (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any]
            let id = message?["id"] ?? NSNull()
            let token = request.headers[.authorization].map { String($0.dropFirst("Bearer ".count)) } ?? ""
            let scopes = (try? DecodedJWT(token))?.scopes ?? []
            let result: [String: Any]
            if scopes.contains("mcp:tools:manage") {
                result = ["content": [["type": "text", "text": "done with manage"]], "isError": false]
            } else {
                let inner = #"{"error":"insufficient_scope","required_scopes":["mcp:connect","mcp:tools:read","mcp:tools:manage"],"www_authenticate":"Bearer error=\"insufficient_scope\", scope=\"mcp:connect mcp:tools:read mcp:tools:manage\""}"#
                result = ["content": [["type": "text", "text": inner]], "isError": true]
            }
            let data = try JSONSerialization.data(withJSONObject: ["jsonrpc": "2.0", "id": id, "result": result] as [String: Any])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        return RecordingUpstream(server: try await TestHTTPServer.start(router), seen: log)
    }
}

/// The request headers a ``RecordingUpstream`` received, in order.
private final class HeaderLog: Sendable {
    private let entries = Mutex<[HTTPFields]>([])
    var all: [HTTPFields] { entries.withLock { $0 } }
    func append(_ fields: HTTPFields) { entries.withLock { $0.append(fields) } }
}

/// A "token endpoint" that answers every POST with 200 and an HTML page instead of JSON.
enum GarbageTokenEndpoint {
    static func start() async throws -> RunningServer {
        let router = Router(context: BasicRequestContext.self)
        router.post("/token") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html"], body: .init(byteBuffer: ByteBuffer(string: "<html><body>Service temporarily moved</body></html>")))
        }
        return try await TestHTTPServer.start(router)
    }
}
