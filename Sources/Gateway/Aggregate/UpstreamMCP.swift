import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import PluginAPI
import SwitchboardJSON

/// The `/mcp` endpoint's MCP client toward one connection, for one caller: every message goes
/// through the proxy pipeline (``ProxyHandler/callMCP``) exactly as a direct `/mcp/{name}` call
/// would — the same admission, credential, refresh, step-up, consent, recording and access log.
/// Keeps the upstream session (initialised lazily, again when the upstream forgot it).
struct UpstreamMCP: Sendable {
    let proxy: ProxyHandler
    let registry: Registry
    let connection: Connection
    let caller: CallerIdentity
    let sessions: UpstreamSessionSlot

    /// The protocol revision the gateway asks its upstreams for.
    static let protocolVersion = "2025-11-25"
    static let clientInfo: JSONValue = ["name": "switchboard-gateway", "version": "1.0"]
    /// The most of an upstream answer read (a list or a tool result).
    static let maxAnswer = 8 << 20

    /// Why a message got no JSON-RPC answer.
    struct Failure: Error, Sendable {
        var code: String
        var message: String
        var status: Int
        /// For `interaction_required`: where the user consents.
        var interactionURI: String?

        /// How a merged answer names it (`_meta`).
        func meta(connection: String) -> JSONValue {
            var o: [String: JSONValue] = ["connection": .string(connection), "code": .string(code), "message": .string(message)]
            if let interactionURI { o["interaction_uri"] = .string(interactionURI) }
            return .object(o)
        }
    }

    /// What came back: the JSON-RPC answer, any notifications the upstream sent before it, and
    /// the scopes a step-up on the way added (the pipeline's `Switchboard-Step-Up`).
    struct Answer: Sendable {
        var message: JSONValue
        var notifications: [JSONValue]
        var stepUp: String?
    }

    /// Sends a request (`method`, `params`) and returns its JSON-RPC answer (result or error).
    func request(_ method: String, params: JSONValue?) async throws(Failure) -> Answer {
        let session = try await session()
        do {
            return try await send(method, params: params, session: session)
        } catch let failure where failure.status == 404 {
            // The upstream forgot the session (restarted, expired): a new one, then once more.
            sessions.forget(connection.name, if: session)
            return try await send(method, params: params, session: try await self.session())
        }
    }

    /// The upstream's answer as it came (a 200: JSON or an event stream), for a request sent
    /// with the client's own JSON-RPC id: passed on without being parsed or written again.
    struct Relayed: Sendable {
        /// As the pipeline shaped them (the upstream's session id among them: the endpoint puts its own in).
        var headers: HTTPFields
        var body: ByteBuffer
    }

    /// Sends a request with the client's `id` and returns the answer's bytes (`tools/call`:
    /// nothing in it needs rewriting). A failure is thrown as by ``request(_:params:)``.
    func relay(_ method: String, params: JSONValue?, id: JSONValue) async throws(Failure) -> Relayed {
        var message: [String: JSONValue] = ["jsonrpc": "2.0", "id": id, "method": .string(method)]
        if let params { message["params"] = params }
        let body = JSONValue.object(message)
        var session = try await session()
        for attempt in 0..<2 {
            let (status, headers, answer) = await post(body, session: session)
            if status == 200 {
                return Relayed(headers: headers, body: answer)
            }
            let failure = failure(status: status, body: answer)
            guard status == 404, attempt == 0 else { throw failure }
            sessions.forget(connection.name, if: session)  // forgotten upstream: a new session, once
            session = try await self.session()
        }
        throw Failure(code: "upstream_session_lost", message: "the server keeps forgetting the session", status: 502)
    }

    /// Reads the upstream session's `GET` stream (server-to-client messages) until it ends or
    /// the task is cancelled, calling `onNote` with each list-changed notification in it.
    func follow(_ session: UpstreamSession, _ onNote: @escaping @Sendable (JSONValue) -> Void) async {
        var headers = Self.headers(session)
        headers.replaceOrAdd(name: "Accept", value: "text/event-stream")
        headers.remove(name: "Content-Type")
        let response = await proxy.callMCP(connection, in: registry, for: caller, method: .get, headers: headers, body: nil)
        guard response.status == .ok, response.headers[.contentType]?.lowercased().hasPrefix("text/event-stream") == true else {
            _ = try? await response.body.collect(upTo: 1 << 16)
            return
        }
        try? await response.body.write(NotificationWriter(onNote: onNote))
    }

    /// Ends the upstream session, if there is one (best effort).
    func close() async {
        guard let session = sessions.take(connection.name), let id = session.id else { return }
        var headers = Self.headers(session)
        headers.replaceOrAdd(name: "Mcp-Session-Id", value: id)
        let response = await proxy.callMCP(connection, in: registry, for: caller, method: .delete, headers: headers, body: nil)
        _ = try? await response.body.collect(upTo: 1 << 16)
    }

    private func send(_ method: String, params: JSONValue?, session: UpstreamSession) async throws(Failure) -> Answer {
        var message: [String: JSONValue] = ["jsonrpc": "2.0", "id": .number(Double(session.nextID())), "method": .string(method)]
        if let params { message["params"] = params }
        let (status, headers, body) = await post(.object(message), session: session)
        guard status == 200 else { throw failure(status: status, body: body) }
        let messages = Self.messages(body, contentType: headers[.contentType])
        guard let answer = messages.last(where: { $0["id"] != nil && ($0["result"] != nil || $0["error"] != nil) }) else {
            throw Failure(code: "upstream_bad_answer", message: "the server's answer to \(method) carried no JSON-RPC response", status: 502)
        }
        return Answer(
            message: answer, notifications: messages.filter { $0["id"] == nil && $0["method"] != nil },
            stepUp: headers[HTTPField.Name(HeaderFilter.stepUpHeader)!])
    }

    /// The session to use: the one kept, or a new one after `initialize`.
    private func session() async throws(Failure) -> UpstreamSession {
        if let kept = sessions.current(connection.name) { return kept }
        let fresh = UpstreamSession(id: nil, protocolVersion: Self.protocolVersion)
        let params: JSONValue = ["protocolVersion": .string(Self.protocolVersion), "capabilities": [:], "clientInfo": Self.clientInfo]
        let initialize: JSONValue = ["jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params]
        let (status, headers, body) = await post(initialize, session: nil)
        guard status == 200 else { throw failure(status: status, body: body) }
        let answer = Self.messages(body, contentType: headers[.contentType]).last { $0["id"] != nil }
        guard let result = answer?["result"] else {
            throw Failure(code: "upstream_bad_answer", message: "the server did not accept initialize", status: 502)
        }
        let session = UpstreamSession(
            id: headers[HTTPField.Name("Mcp-Session-Id")!], protocolVersion: result["protocolVersion"]?.string ?? fresh.protocolVersion)
        let initialized: JSONValue = ["jsonrpc": "2.0", "method": "notifications/initialized"]
        _ = await post(initialized, session: session)
        return sessions.keep(connection.name, session)
    }

    private static func headers(_ session: UpstreamSession?) -> HTTPHeaders {
        var headers = HTTPHeaders([("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")])
        if let session {
            headers.add(name: "MCP-Protocol-Version", value: session.protocolVersion)
            if let id = session.id { headers.add(name: "Mcp-Session-Id", value: id) }
        }
        return headers
    }

    private func post(_ message: JSONValue, session: UpstreamSession?) async -> (Int, HTTPFields, ByteBuffer) {
        var headers = Self.headers(session)
        let body = ByteBuffer(bytes: message.encoded())
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        let response = await proxy.callMCP(connection, in: registry, for: caller, method: .post, headers: headers, body: body)
        let collected = (try? await response.body.collect(upTo: Self.maxAnswer)) ?? ByteBuffer()
        return (Int(response.status.code), response.headers, collected)
    }

    /// The JSON-RPC messages of an answer: a JSON body (one message or a batch) or the events of an SSE one.
    static func messages(_ body: ByteBuffer, contentType: String?) -> [JSONValue] {
        if contentType?.lowercased().hasPrefix("text/event-stream") == true {
            var parser = SSEParser()
            return parser.feed(body.readableBytesView).compactMap { JSONValue.parse(Array($0.utf8)) }
        }
        guard let value = JSONValue.parse(body.readableBytesView) else { return [] }
        return value.array ?? [value]
    }

    /// A gateway or upstream refusal as a failure (the gateway's JSON error shape when it is one).
    private func failure(status: Int, body: ByteBuffer) -> Failure {
        let json = JSONValue.parse(body.readableBytesView)
        // The gateway's error shape, or (for an MCP call that carried an id) its JSON-RPC form.
        let data = json?["error"]?["data"]
        let code = json?["error"]?.string ?? data?["error"]?.string ?? "upstream_status"
        let message = json?["message"]?.string ?? json?["error"]?["message"]?.string ?? json?["error_description"]?.string
            ?? "the server answered \(status)"
        return Failure(code: code, message: message, status: status, interactionURI: json?["interaction_uri"]?.string ?? data?["interaction_uri"]?.string)
    }
}

/// Feeds an event stream to ``SSEParser`` and hands on the list-changed notifications in it.
private struct NotificationWriter: ResponseBodyWriter {
    let onNote: @Sendable (JSONValue) -> Void
    var parser = SSEParser()

    init(onNote: @escaping @Sendable (JSONValue) -> Void) { self.onNote = onNote }

    mutating func write(_ chunk: ByteBuffer) async throws {
        try Task.checkCancellation()
        for event in parser.feed(chunk.readableBytesView) {
            guard let message = JSONValue.parse(Array(event.utf8)), let method = message["method"]?.string, method.hasSuffix("/list_changed") else { continue }
            onNote(["jsonrpc": "2.0", "method": .string(method)])
        }
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

private extension ResponseBody {
    /// The whole body, up to `limit` bytes.
    func collect(upTo limit: Int) async throws -> ByteBuffer {
        let into = Collected(limit: limit)
        try await write(CollectingWriter(into: into))
        return into.buffer
    }
}

/// What ``CollectingWriter`` wrote (the writer is consumed by the body).
private final class Collected {
    let limit: Int
    var buffer = ByteBuffer()
    init(limit: Int) { self.limit = limit }
}

private struct CollectingWriter: ResponseBodyWriter {
    let into: Collected

    struct TooLarge: Error {}

    mutating func write(_ chunk: ByteBuffer) async throws {
        guard into.buffer.readableBytes + chunk.readableBytes <= into.limit else { throw TooLarge() }
        var chunk = chunk
        into.buffer.writeBuffer(&chunk)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
