import AsyncHTTPClient
import Foundation
import Hummingbird
import LLMAdapter
import NIOCore
import NIOHTTP1
import SwitchboardJSON
import SwitchboardTesting

/// Starts `switchboard llm` (the real application, built by `buildLLMAdapterApplication`) on a
/// free loopback port and talks to it over HTTP.
enum LLMHarness {
    /// Options for tests: a free port, a quiet logger, tiny retry delays.
    static func options(_ backend: LLMBackendSetting = .offline) -> LLMAdapterOptions {
        var options = LLMAdapterOptions()
        options.port = 0
        options.backend = backend
        options.retryBaseDelay = .milliseconds(10)
        options.retryMaxDelay = .milliseconds(200)
        options.connectTimeout = .seconds(2)
        options.logger = .quiet("llm-adapter-under-test")
        return options
    }

    /// Starts the adapter; the caller stops the returned server.
    static func start(_ options: LLMAdapterOptions) async throws -> RunningServer {
        var options = options
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        options.onServerRunning = { port in continuation.yield(port) }
        let app = try await buildLLMAdapterApplication(options)
        return try await TestHTTPServer.run(app, ports: ports)
    }

    /// Runs `body` against an adapter started with `options`, and stops the adapter afterwards
    /// (also when `body` throws).
    static func withAdapter<T: Sendable>(_ options: LLMAdapterOptions, _ body: (LLMClient) async throws -> T) async throws -> T {
        let server = try await start(options)
        do {
            let result = try await body(LLMClient(baseURL: server.baseURL))
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    /// A loopback port on which nothing listens any more (a server was started there and stopped).
    /// A loopback port that refuses connections for as long as `body` runs: a socket is bound
    /// to it but never listens, so no other test's server can take the port meanwhile.
    static func withClosedPort<T>(_ body: (Int) async throws -> T) async throws -> T {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0, "socket() failed")
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        precondition(bound == 0, "bind() failed")
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return try await body(Int(UInt16(bigEndian: address.sin_port)))
    }
}

/// One whole answer from the adapter (``HTTPAnswer``), with the Anthropic views of its body.
typealias LLMReply = HTTPAnswer

extension HTTPAnswer {
    /// The body as JSON (nil when it is not JSON).
    var jsonValue: JSONValue? { JSONValue.parse(buffer.readableBytesView) }
    /// `error.type` of an Anthropic-shaped error body.
    var errorType: String? { jsonValue?["error"]?["type"]?.string }
    var errorMessage: String? { jsonValue?["error"]?["message"]?.string }
}

/// One server-sent event: `event: <name>` and its `data:` parsed as JSON.
struct SSEEvent: Sendable, Equatable {
    var event: String
    var data: JSONValue?
    var raw: String

    var type: String? { data?["type"]?.string }
}

/// A client of the adapter under test.
struct LLMClient: Sendable {
    let baseURL: String

    static let jsonType = ("content-type", "application/json")

    /// Any request; `body` is sent as is (streamed in 512-byte pieces without a length when `chunked`).
    func send(
        _ method: HTTPMethod = .POST, _ path: String = "/v1/messages", headers: [(String, String)] = [jsonType], body: [UInt8]? = nil,
        chunked: Bool = false, deadline: Duration = .seconds(30)
    ) async throws -> LLMReply {
        try await TestHTTP.send(method, baseURL + path, headers: headers, content: Self.content(body, chunked: chunked), client: .shared, timeout: deadline)
    }

    /// `POST /v1/messages` with a JSON body.
    func messages(_ body: JSONValue, headers: [(String, String)] = []) async throws -> LLMReply {
        try await send(.POST, "/v1/messages", headers: [Self.jsonType] + headers, body: Array(body.encoded()))
    }

    /// `POST /v1/messages` whose answer is read event by event.
    func stream(_ body: JSONValue, headers: [(String, String)] = []) async throws -> SSEStream {
        let response = try await HTTPClient.shared.execute(
            request(.POST, "/v1/messages", headers: [Self.jsonType] + headers, body: Array(body.encoded()), chunked: false), timeout: .seconds(30))
        return SSEStream(status: Int(response.status.code), headers: response.headers, iterator: response.body.makeAsyncIterator())
    }

    private func request(_ method: HTTPMethod, _ path: String, headers: [(String, String)], body: [UInt8]?, chunked: Bool) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let content = Self.content(body, chunked: chunked) { request.body = content }
        return request
    }

    /// `body` as is, or streamed in 512-byte pieces without a length when `chunked`.
    private static func content(_ body: [UInt8]?, chunked: Bool) -> HTTPClientRequest.Body? {
        guard let body else { return nil }
        guard chunked else { return .bytes(ByteBuffer(bytes: body)) }
        var pieces: [ByteBuffer] = []
        var index = 0
        while index < body.count {
            pieces.append(ByteBuffer(bytes: body[index..<min(index + 512, body.count)]))
            index += 512
        }
        return .stream(AsyncStream { continuation in
            for piece in pieces { continuation.yield(piece) }
            continuation.finish()
        }, length: .unknown)
    }
}

/// An SSE answer read as it arrives.
struct SSEStream {
    let status: Int
    let headers: HTTPHeaders
    private var iterator: HTTPClientResponse.Body.AsyncIterator
    private var pending: [UInt8] = []
    /// Every byte received so far.
    private(set) var raw: [UInt8] = []
    /// True once the body ended.
    private(set) var ended = false

    init(status: Int, headers: HTTPHeaders, iterator: HTTPClientResponse.Body.AsyncIterator) {
        self.status = status
        self.headers = headers
        self.iterator = iterator
    }

    /// The next complete event, or nil at the end of the body.
    mutating func next() async throws -> SSEEvent? {
        while true {
            if let event = takeEvent() { return event }
            if ended { return nil }
            guard let chunk = try await iterator.next() else {
                ended = true
                continue
            }
            raw.append(contentsOf: chunk.readableBytesView)
            pending.append(contentsOf: chunk.readableBytesView)
        }
    }

    /// Reads on until the bytes received so far contain `text` (false if the body ended first).
    mutating func readUntil(rawContains text: String) async throws -> Bool {
        while !String(decoding: raw, as: UTF8.self).contains(text) {
            guard !ended, let chunk = try await iterator.next() else {
                ended = true
                return false
            }
            raw.append(contentsOf: chunk.readableBytesView)
            pending.append(contentsOf: chunk.readableBytesView)
        }
        return true
    }

    /// Every remaining event, up to the end of the body.
    mutating func rest() async throws -> [SSEEvent] {
        var events: [SSEEvent] = []
        while let event = try await next() { events.append(event) }
        return events
    }

    /// Bytes after the last complete event (should be none at the end).
    var leftover: String { String(decoding: pending, as: UTF8.self) }

    private mutating func takeEvent() -> SSEEvent? {
        guard let end = SSEParser.blockEnd(in: pending) else { return nil }
        let block = String(decoding: pending[..<end.lowerBound], as: UTF8.self)
        pending.removeSubrange(..<end.upperBound)
        return SSEParser.event(block)
    }
}

enum SSEParser {
    /// Every event of a whole SSE body.
    static func events(_ text: String) -> [SSEEvent] {
        var bytes = Array(text.utf8)
        var out: [SSEEvent] = []
        while let end = blockEnd(in: bytes) {
            let block = String(decoding: bytes[..<end.lowerBound], as: UTF8.self)
            bytes.removeSubrange(..<end.upperBound)
            if let event = event(block) { out.append(event) }
        }
        return out
    }

    static func blockEnd(in bytes: [UInt8]) -> Range<Int>? {
        guard bytes.count >= 2 else { return nil }
        for i in 0..<(bytes.count - 1) where bytes[i] == 10 && bytes[i + 1] == 10 { return i..<(i + 2) }
        return nil
    }

    static func event(_ block: String) -> SSEEvent? {
        var name = "message"
        var data: [String] = []
        for line in block.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("event:") { name = line.dropFirst(6).trimmingCharacters(in: .whitespaces) }
            else if line.hasPrefix("data:") { data.append(String(line.dropFirst(5)).trimmingCharacters(in: .whitespaces)) }
        }
        let joined = data.joined(separator: "\n")
        return SSEEvent(event: name, data: JSONValue.parse(Array(joined.utf8)), raw: block)
    }

    /// The content blocks a Messages event sequence builds (text deltas joined, tool input JSON parsed).
    static func rebuildContent(_ events: [SSEEvent]) -> [JSONValue] {
        var blocks: [Int: JSONValue] = [:]
        var partialJSON: [Int: String] = [:]
        for event in events {
            guard let data = event.data, let index = data["index"]?.integer else { continue }
            switch event.event {
            case "content_block_start":
                blocks[index] = data["content_block"]
            case "content_block_delta":
                guard var block = blocks[index]?.object else { continue }
                if let text = data["delta"]?["text"]?.string { block["text"] = .string((block["text"]?.string ?? "") + text) }
                if let piece = data["delta"]?["partial_json"]?.string { partialJSON[index, default: ""] += piece }
                blocks[index] = .object(block)
            case "content_block_stop":
                if let json = partialJSON[index], var block = blocks[index]?.object {
                    block["input"] = JSONValue.parse(Array(json.utf8)) ?? .null
                    blocks[index] = .object(block)
                }
            default:
                continue
            }
        }
        return blocks.keys.sorted().compactMap { blocks[$0] }
    }
}

extension JSONValue {
    /// Bytes of the compact encoding as a String (keys sorted), for exact comparisons.
    var encodedText: String { String(decoding: encoded(), as: UTF8.self) }
}

/// Starts a fake, runs `body`, then releases whatever the fake holds and stops it.
protocol FakeUpstream: Sendable {
    var baseURL: String { get }
    func stop() async
}

func withFake<F: FakeUpstream, T: Sendable>(_ fake: F, _ body: (F) async throws -> T) async throws -> T {
    try await withCleanup({ try await body(fake) }, cleanup: { await fake.stop() })
}
