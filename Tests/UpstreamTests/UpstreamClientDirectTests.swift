import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import SwitchboardTesting
import Testing
import Upstream

/// The upstream client on its own (no gateway): what the proxy relies on it for.
@Suite("Upstream client")
struct UpstreamClientDirectTests {
    static func client(maxPerOrigin: Int = 4) -> UpstreamClient {
        UpstreamClient(
            pool: HTTP1ConnectionPool(maxPerOrigin: maxPerOrigin, connectTimeout: .seconds(2), idleTimeout: .seconds(30)),
            fallback: HTTPClient.shared)
    }

    static func request(_ upstream: String, _ path: String, method: HTTPMethod = .GET, body: UpstreamRequest.Body = .none) throws -> UpstreamRequest {
        let origin = try #require(UpstreamOrigin(upstream))
        return UpstreamRequest(origin: origin, method: method, target: path, headers: ["x-trace": "t1"], body: body)
    }

    static func text(_ response: HTTPClientResponse) async throws -> String {
        String(buffer: try await response.body.collect(upTo: 1 << 20))
    }

    @Test("an answer comes back whole; a second request reuses the kept connection")
    func answersAndKeepsTheConnection() async throws {
        let upstream = try await ScriptedUpstream.start { request in .text("hello \(request.uri)") }
        let client = Self.client()
        do {
            let first = try await client.execute(try Self.request(upstream.baseURL, "/a?x=1"), timeout: .seconds(5))
            #expect(first.status == .ok)
            #expect(try await Self.text(first) == "hello /a?x=1")
            let second = try await client.execute(try Self.request(upstream.baseURL, "/b"), timeout: .seconds(5))
            #expect(try await Self.text(second) == "hello /b")
            #expect(upstream.accepted == 1, "one TCP connection for both requests")
            #expect(upstream.requests.map { $0.header("x-trace") } == ["t1", "t1"])
        }
        await client.shutdown()
        await upstream.stop()
    }

    @Test("at the per-origin cap, a request waits for the connection in use instead of opening another")
    func waitsAtTheCap() async throws {
        let upstream = try await ScriptedUpstream.start { _ in .text("slow", delay: .milliseconds(200)) }
        let client = Self.client(maxPerOrigin: 1)
        let request = try Self.request(upstream.baseURL, "/slow")
        async let one = client.execute(request, timeout: .seconds(5))
        async let two = client.execute(request, timeout: .seconds(5))
        let answers = try await [one, two]
        for answer in answers { #expect(try await Self.text(answer) == "slow") }
        #expect(upstream.accepted == 1)
        await client.shutdown()
        await upstream.stop()
    }

    @Test("no answer head within the timeout: responseTimeout")
    func responseTimeout() async throws {
        let upstream = try await ScriptedUpstream.start { _ in .text("late", delay: .seconds(2)) }
        let client = Self.client()
        await #expect(throws: UpstreamTransportError.responseTimeout) {
            _ = try await client.execute(try Self.request(upstream.baseURL, "/late"), timeout: .milliseconds(200))
        }
        await client.shutdown()
        await upstream.stop()
    }

    @Test("nothing listening: connectFailed")
    func refused() async throws {
        // A port that was just listening and is closed now.
        let gone = try await ScriptedUpstream.start { _ in .text("") }
        let url = gone.baseURL
        await gone.stop()
        let client = Self.client()
        await #expect(throws: UpstreamTransportError.connectFailed) {
            _ = try await client.execute(try Self.request(url, "/"), timeout: .seconds(2))
        }
        await client.shutdown()
    }

    @Test("a streamed request body (unknown length) goes up chunked, whole")
    func streamedBody() async throws {
        let upstream = try await ScriptedUpstream.start { request in .text("got \(request.body.readableBytes)") }
        let client = Self.client()
        let parts = AsyncThrowingStream<ByteBuffer, any Error> { continuation in
            for i in 0..<5 { continuation.yield(ByteBuffer(string: String(repeating: "\(i)", count: 1000))) }
            continuation.finish()
        }
        let body = UpstreamRequest.Body.stream(parts, length: nil)
        let answer = try await client.execute(try Self.request(upstream.baseURL, "/upload", method: .POST, body: body), timeout: .seconds(5))
        #expect(try await Self.text(answer) == "got 5000")
        #expect(upstream.requests.first?.header("transfer-encoding") == "chunked")
        await client.shutdown()
        await upstream.stop()
    }
}
