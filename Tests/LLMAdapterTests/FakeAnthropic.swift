import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchboardJSON
import SwitchboardTesting
import Synchronization

/// What a fake upstream received, as it arrived on the wire.
struct ReceivedRequest: Sendable {
    var method: String
    /// The request target exactly as sent (still percent-encoded).
    var path: String
    /// The `Host` header (HTTP/1.1), which HTTPTypes keeps as the authority.
    var authority: String?
    var headers: HTTPFields
    var body: [UInt8]

    var json: JSONValue? { JSONValue.parse(body) }
    var bodyText: String { String(decoding: body, as: UTF8.self) }
    func header(_ name: String) -> String? { headers[HTTPField.Name(name)!] }
    func values(_ name: String) -> [String] { headers[values: HTTPField.Name(name)!] }

    init(_ request: Request, body: ByteBuffer) {
        method = request.method.rawValue
        path = request.head.path ?? ""
        authority = request.head.authority
        headers = request.headers
        self.body = Array(body.readableBytesView)
    }
}

/// A real HTTP server on loopback that speaks the Anthropic Messages API
/// (`POST /v1/messages`): it checks what the real API requires (the configured `x-api-key`,
/// `anthropic-version`, a JSON body with `model`, `max_tokens`, `messages`), records every
/// request, and answers in the recorded shapes — a message, an SSE stream, or a scripted failure.
final class FakeAnthropic: FakeUpstream {
    enum Reply: Sendable {
        /// A message (JSON), or the SSE event sequence when the request asked to stream.
        case answer
        /// The SSE sequence, written in pieces; waits at `gate` after `message_start`.
        case gatedStream
        /// An error in the Anthropic shape.
        case error(status: Int, type: String, message: String, retryAfter: String? = nil)
        /// Never answers (until the fake stops).
        case hang
        /// `200` and the start of an SSE stream ending in half an event, then (after `gate`) the connection drops.
        case closeMidStream
        /// `200` with a content length, the first bytes of the message, then silence.
        case stallBody
    }

    static let text = "Hello! I'm a fake Claude, answering from loopback."
    /// The stream's text deltas; joined they are `text`.
    static let deltas = ["Hello! I'm ", "a fake Claude", ", answering ", "from loopback."]
    /// What `closeMidStream` sends of its fifth event before the connection drops.
    static let partialEvent = "event: content_block_delta\ndat"

    let apiKey: String
    let gate = FakeGate()
    let hangs = FakeHangs()
    private let script = Mutex<[Reply]>([])
    private let seen = Mutex<[ReceivedRequest]>([])
    /// How many SSE streams were written to their end.
    let finishedStreams = Mutex(0)
    private let server = Mutex<RunningServer?>(nil)

    var baseURL: String { server.withLock { $0!.baseURL } }
    var received: [ReceivedRequest] { seen.withLock { $0 } }
    var attempts: Int { seen.withLock { $0.count } }

    private init(apiKey: String) {
        self.apiKey = apiKey
    }

    static func start(apiKey: String = "sk-ant-fake-upstream-key") async throws -> FakeAnthropic {
        let fake = FakeAnthropic(apiKey: apiKey)
        let router = Router()
        router.post("/v1/messages") { request, _ in
            let body = try await request.body.collect(upTo: 16 << 20)
            return try await fake.answer(ReceivedRequest(request, body: body))
        }
        let running = try await TestHTTPServer.start(router)
        fake.server.withLock { $0 = running }
        return fake
    }

    /// The next answers, in order; after them, `.answer`.
    func script(_ replies: [Reply]) { script.withLock { $0 += replies } }

    func stop() async {
        gate.releaseAll()
        hangs.releaseAll()
        let running = server.withLock { $0 }
        await running?.stop()
    }

    // MARK: - Answers

    private func answer(_ request: ReceivedRequest) async throws -> Response {
        seen.withLock { $0.append(request) }
        let attempt = attempts
        if let refusal = check(request) { return refusal }
        let json = request.json!
        let model = json["model"]!.string!
        let stream = json["stream"]?.bool == true
        let reply = script.withLock { $0.isEmpty ? Reply.answer : $0.removeFirst() }
        switch reply {
        case .answer where stream:
            return streamResponse(model: model, attempt: attempt, gated: false)
        case .answer:
            return Self.json(Self.message(model: model, inputTokens: request.body.count / 4), requestID: attempt)
        case .gatedStream:
            return streamResponse(model: model, attempt: attempt, gated: true)
        case .error(let status, let type, let message, let retryAfter):
            return Self.error(status: status, type: type, message: message, retryAfter: retryAfter, requestID: attempt)
        case .hang:
            await hangs.hang()
            return Self.error(status: 500, type: "api_error", message: "released", requestID: attempt)
        case .closeMidStream:
            let events = Self.events(model: model)
            let gate = self.gate
            return Response(status: .ok, headers: Self.sseHeaders(requestID: attempt), body: ResponseBody { writer in
                // Four events and the first bytes of the fifth; once the test saw them (gate), the
                // connection goes (Hummingbird closes it when the body fails).
                try await writer.write(ByteBuffer(string: events.prefix(4).joined() + Self.partialEvent))
                await gate.wait()
                throw FakeUpstreamBroke()
            })
        case .stallBody:
            let bytes = Self.message(model: model, inputTokens: 10).encoded()
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            headers[.contentLength] = String(bytes.count)
            let hangs = self.hangs
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                try await writer.write(ByteBuffer(bytes: bytes.prefix(20)))
                await hangs.hang()
                throw FakeUpstreamBroke()
            })
        }
    }

    /// What the real API refuses: no/wrong key (401), no version or not JSON (400), a body without its required fields (400).
    private func check(_ request: ReceivedRequest) -> Response? {
        guard request.header("x-api-key") == apiKey else {
            return Self.error(status: 401, type: "authentication_error", message: "invalid x-api-key", requestID: 0)
        }
        guard let version = request.header("anthropic-version"), !version.isEmpty else {
            return Self.error(status: 400, type: "invalid_request_error", message: "anthropic-version: header is required", requestID: 0)
        }
        guard request.header("content-type")?.lowercased().hasPrefix("application/json") == true else {
            return Self.error(status: 400, type: "invalid_request_error", message: "content-type: must be application/json", requestID: 0)
        }
        guard let json = request.json, json.object != nil else {
            return Self.error(status: 400, type: "invalid_request_error", message: "There was an issue with the JSON body", requestID: 0)
        }
        guard json["model"]?.string?.isEmpty == false else {
            return Self.error(status: 400, type: "invalid_request_error", message: "model: Field required", requestID: 0)
        }
        guard let maxTokens = json["max_tokens"]?.integer, maxTokens >= 1 else {
            return Self.error(status: 400, type: "invalid_request_error", message: "max_tokens: Field required", requestID: 0)
        }
        guard let messages = json["messages"]?.array, !messages.isEmpty else {
            return Self.error(status: 400, type: "invalid_request_error", message: "messages: Field required", requestID: 0)
        }
        return nil
    }

    private func streamResponse(model: String, attempt: Int, gated: Bool) -> Response {
        let events = Self.events(model: model)
        let gate = self.gate
        return Response(status: .ok, headers: Self.sseHeaders(requestID: attempt), body: ResponseBody { writer in
            try await writer.write(ByteBuffer(string: events[0]))
            if gated { await gate.wait() }
            // The rest in pieces that cut events in the middle, as a network does.
            let rest = Array(events.dropFirst().joined().utf8)
            var index = 0
            for size in [7, 150, 33, 90, 1, 64] where index < rest.count {
                let end = min(index + size, rest.count)
                try await writer.write(ByteBuffer(bytes: rest[index..<end]))
                index = end
            }
            if index < rest.count { try await writer.write(ByteBuffer(bytes: rest[index...])) }
            self.finishedStreams.withLock { $0 += 1 }
            try await writer.finish(nil)
        })
    }

    // MARK: - Recorded shapes

    static func message(model: String, inputTokens: Int) -> JSONValue {
        [
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": .string(model),
            "content": [["type": "text", "text": .string(text)]], "stop_reason": "end_turn", "stop_sequence": nil,
            "usage": ["input_tokens": .number(Double(max(1, inputTokens))), "output_tokens": 14],
        ]
    }

    /// The SSE sequence of a streamed answer, one string per event, as the API writes it.
    static func events(model: String) -> [String] {
        func event(_ name: String, _ data: String) -> String { "event: \(name)\ndata: \(data)\n\n" }
        var out = [
            event("message_start", #"{"type":"message_start","message":{"id":"msg_01HCDu5LRGeP2o7s2xGmxyx8","type":"message","role":"assistant","content":[],"model":"\#(model)","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#),
            event("content_block_start", #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
            event("ping", #"{"type": "ping"}"#),
        ]
        for delta in deltas {
            out.append(event("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\#(delta)"}}"#))
        }
        out.append(event("content_block_stop", #"{"type":"content_block_stop","index":0}"#))
        out.append(event("message_delta", #"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#))
        out.append(event("message_stop", #"{"type":"message_stop"}"#))
        return out
    }

    static func sseHeaders(requestID: Int) -> HTTPFields {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-cache"
        headers[HTTPField.Name("request-id")!] = "req_fake_\(requestID)"
        return headers
    }

    static func json(_ value: JSONValue, requestID: Int) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[HTTPField.Name("request-id")!] = "req_fake_\(requestID)"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: value.encoded())))
    }

    static func error(status: Int, type: String, message: String, retryAfter: String? = nil, requestID: Int) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[HTTPField.Name("request-id")!] = "req_fake_\(requestID)"
        if let retryAfter { headers[.retryAfter] = retryAfter }
        let body: JSONValue = ["type": "error", "error": ["type": .string(type), "message": .string(message)]]
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body.encoded())))
    }
}

/// Thrown from a fake's body writer to drop the connection mid-answer.
struct FakeUpstreamBroke: Error {}
