import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization
import SwitchboardTesting

/// Real upstream servers for the proxy tests: an MCP endpoint answering JSON or SSE, and a
/// REST echo. They record what reached them so tests can check what the gateway forwarded.
///
/// Not a script on ``ScriptedUpstream``, which hands its script a whole request and writes a
/// reply it decided then: `/early` answers before the request body is read (as nginx's
/// `return` does), and the SSE stream holds its second event until the test opens ``gate``
/// and reports when it wrote its end (``streamFinished``). Use ``ScriptedUpstream`` for
/// anything else.
final class TestUpstream: Sendable {
    struct Seen: Sendable {
        var method: String
        var path: String
        var headers: [String: String]
        var body: String
    }

    let seen = Mutex<[Seen]>([])
    /// The SSE stream waits for this gate before its second event.
    let gate = Mutex(false)
    /// True once the SSE stream wrote its last event.
    let streamFinished = Mutex(false)
    let server: Mutex<RunningServer?> = Mutex(nil)

    var baseURL: String { server.withLock { $0!.baseURL } }
    var lastSeen: Seen? { seen.withLock { $0.last } }

    static func start() async throws -> TestUpstream {
        let upstream = TestUpstream()
        let router = Router()
        router.on("/mcp", method: .post) { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            let text = String(buffer: body)
            upstream.record(request, body: text)
            let message = jsonObject(text)
            let id = message["id"] ?? NSNull()
            let method = message["method"] as? String ?? ""
            if method == "notifications/initialized" { return Response(status: .accepted) }
            if method == "slow" {
                try await Task.sleep(for: .seconds(2))
            }
            if method == "stream" {
                return upstream.sseResponse(id: id)
            }
            let result: [String: Any] = ["jsonrpc": "2.0", "id": id, "result": ["echo": method, "tools": [["name": "t1"]]]]
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            headers[HTTPField.Name("Mcp-Session-Id")!] = "session-abc"
            headers[.setCookie] = "upstream=1"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: result))))
        }
        // Answers at once without reading the request body (as nginx's `return` does).
        router.on("/early", method: .post) { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{\"early\":true}")))
        }
        router.on("/mcp", method: .get) { request, _ in
            upstream.record(request, body: "")
            return upstream.sseResponse(id: NSNull())
        }
        router.on("/mcp", method: .delete) { request, _ in
            upstream.record(request, body: "")
            return Response(status: .ok)
        }
        for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete] {
            router.on("/api/**", method: method) { request, _ in
                let body = try await request.body.collect(upTo: 4 << 20)
                upstream.record(request, body: String(buffer: body))
                if request.uri.path.hasSuffix("/big") {
                    return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: ByteBuffer(repeating: UInt8(ascii: "x"), count: 16_384)))
                }
                if request.uri.path.hasSuffix("/fail") {
                    return Response(status: .internalServerError)
                }
                let echo: [String: Any] = ["method": request.method.rawValue, "path": request.uri.path, "query": request.uri.query ?? "", "body_bytes": body.readableBytes]
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: echo))))
            }
        }
        let running = try await TestHTTPServer.start(router)
        upstream.server.withLock { $0 = running }
        return upstream
    }

    func stop() async {
        let s = server.withLock { $0 }
        await s?.stop()
    }

    private func record(_ request: Request, body: String) {
        var headers: [String: String] = [:]
        for f in request.headers {
            let k = f.name.canonicalName
            headers[k] = headers[k].map { $0 + ", " + f.value } ?? f.value
        }
        let s = Seen(method: request.method.rawValue, path: request.uri.string, headers: headers, body: body)
        seen.withLock { $0.append(s) }
    }

    /// Event 1 at once; event 2 only after the gate opens (or 5 s); then the stream ends.
    private func sseResponse(id: Any) -> Response {
        let idText = (try? JSONSerialization.data(withJSONObject: [id], options: [.fragmentsAllowed])).map { String(decoding: $0.dropFirst().dropLast(), as: UTF8.self) } ?? "null"
        streamFinished.withLock { $0 = false }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            try await writer.write(ByteBuffer(string: "id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"n\":1}}\n\n"))
            let start = ContinuousClock.now
            while !self.gate.withLock({ $0 }), ContinuousClock.now - start < .seconds(5) {
                try await Task.sleep(for: .milliseconds(10))
            }
            try await writer.write(ByteBuffer(string: "id: 2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\(idText),\"result\":{\"done\":true}}\n\n"))
            self.streamFinished.withLock { $0 = true }
            try await writer.finish(nil)
        })
    }
}
