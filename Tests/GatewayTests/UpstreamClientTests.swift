import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardTesting
import Testing

/// The gateway's own keep-alive HTTP/1.1 client to plain-HTTP upstreams (Proxy/Upstream/),
/// exercised through a real gateway against ``RawUpstream``, a bare SwiftNIO server that
/// counts TCP connections and misbehaves on demand.
@Suite("Upstream client: keep-alive HTTP/1.1 to plain-HTTP upstreams")
struct UpstreamClientTests {
    /// A gateway whose connection `raw` (`/rest/raw/…`) leads to a fresh ``RawUpstream``.
    /// `gateway`: a whole `gateway:` block; `connection`: extra keys of the `raw` entry (4 spaces).
    static func withRaw(
        gateway: String = "", connection: String = "", closeOnAccept: Bool = false, _ body: (GatewayHarness, RawUpstream) async throws -> Void
    ) async throws {
        let upstream = try await RawUpstream.start(closeOnAccept: closeOnAccept)
        let connections = """
              - name: raw
                kind: application
                upstream: \(upstream.baseURL)/u
                auth: { strategy: none }
            \(connection)
            """
        try await withCleanup({
            let harness = try await GatewayHarness.start(connections: connections, gateway: gateway)
            try await withCleanup({ try await body(harness, upstream) }, cleanup: { await harness.stop() })
        }, cleanup: { await upstream.stop() })
    }

    typealias Answer = HTTPAnswer

    /// One call through the gateway, answer read whole; fails after `deadline` (a hung call is a failure, not a hang).
    /// With `gateway.timeouts.idle` as short as 500 ms, the gateway's first fetch of the
    /// issuer's keys can run out of time on a loaded machine (503 idp_unavailable): call until
    /// the keys are cached, so the test measures the upstream, not the key fetch.
    static func warmKeys(_ gw: GatewayHarness) async throws {
        for _ in 0..<20 {
            if try await call(gw, "/rest/raw/ok").status != 503 { return }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    static func call(
        _ gw: GatewayHarness, _ path: String, method: HTTPMethod = .GET, body: HTTPClientRequest.Body? = nil, headers: [(String, String)] = [],
        deadline: Duration = .seconds(15)
    ) async throws -> Answer {
        try await TestHTTP.send(
            method, gw.baseURL + path, headers: [("Authorization", "Bearer " + gw.token())] + headers, content: body, client: HTTPClient.shared, timeout: deadline)
    }

    static func sha256(_ buffer: ByteBuffer) -> String {
        buffer.withUnsafeReadableBytes { RawUpstream.hex(SHA256.hash(data: $0)) }
    }

    // MARK: 1. Keep-alive

    @Test func sequentialCallsReuseOneUpstreamConnection() async throws {
        try await Self.withRaw { gw, upstream in
            for i in 0..<20 {
                let r = try await Self.call(gw, "/rest/raw/ok?i=\(i)")
                #expect(r.status == 200, "call \(i)")
                #expect(r.body == "ok", "call \(i)")
            }
            #expect(upstream.accepted == 1, "20 sequential calls must share one kept upstream connection")
            let seen = upstream.requests
            #expect(seen.count == 20)
            #expect(seen.map(\.indexOnConnection) == Array(1...20))
            #expect(seen.allSatisfy { $0.headers.first(name: "host") == "127.0.0.1:\(upstream.port)" })
        }
    }

    // MARK: 2. The per-upstream cap

    @Test func concurrentCallsNeverOpenMoreThanTheCapAndAllComplete() async throws {
        try await Self.withRaw(gateway: """
            gateway:
              limits:
                max_connections_per_upstream: 2
            """) { gw, upstream in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<8 {
                    group.addTask { try await Self.call(gw, "/rest/raw/gated?i=\(i)", deadline: .seconds(30)).status }
                }
                // Two answers held at the gate: both slots are taken.
                let held = try await gw.waitUntil(timeout: .seconds(10)) { upstream.pendingAtGate >= 2 }
                #expect(held != nil, "two requests should reach the upstream while the gate is shut")
                // Give the other six time to reach the gateway and (wrongly) open more connections.
                try await Task.sleep(for: .milliseconds(500))
                #expect(upstream.pendingAtGate == 2, "only two requests may be at the upstream while both connections are busy")
                #expect(upstream.open <= 2)
                upstream.openGate()
                var statuses: [Int] = []
                for try await status in group { statuses.append(status) }
                #expect(statuses == Array(repeating: 200, count: 8))
            }
            #expect(upstream.maxOpen <= 2, "max_connections_per_upstream: 2 was exceeded (\(upstream.maxOpen) at once)")
            #expect(upstream.accepted == 2, "waiting requests must take the two kept connections, not open new ones")
            #expect(upstream.requests.count == 8)
        }
    }

    /// Slot accounting when every answer closes its connection: a slot is freed (and passed on) per close.
    @Test func capHoldsWhenEveryAnswerClosesItsConnection() async throws {
        try await Self.withRaw(gateway: """
            gateway:
              limits:
                max_connections_per_upstream: 2
            """) { gw, upstream in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<12 {
                    group.addTask { try await Self.call(gw, "/rest/raw/close?i=\(i)", deadline: .seconds(20)).status }
                }
                var statuses: [Int] = []
                for try await status in group { statuses.append(status) }
                #expect(statuses == Array(repeating: 200, count: 12))
            }
            #expect(upstream.maxOpen <= 2)
            #expect(upstream.accepted == 12)
            // The slots are all free again.
            let r = try await Self.call(gw, "/rest/raw/ok", deadline: .seconds(10))
            #expect(r.status == 200)
        }
    }

    /// A request waiting for a free connection is still bound by `timeouts.response`: when the
    /// only slot is held by a long stream, the next request gets 504, not an endless wait.
    @Test func waitForAFreeConnectionEndsAtTheResponseTimeout() async throws {
        try await Self.withRaw(gateway: """
            gateway:
              limits:
                max_connections_per_upstream: 1
            """, connection: "    timeouts: { response: 3s }") { gw, upstream in
            // 3 s, not less: A's own head must arrive in time even on a loaded machine.
            // A: its head arrives, then its body stays open (the upstream goes quiet): it holds the only connection.
            var holding = HTTPClientRequest(url: gw.baseURL + "/rest/raw/stall")
            holding.headers.add(name: "Authorization", value: "Bearer " + gw.token())
            let held = try await HTTPClient.shared.execute(holding, timeout: .seconds(30))
            #expect(held.status == .ok)
            #expect(upstream.accepted == 1)
            // B: waits for the slot.
            let started = ContinuousClock.now
            do {
                let r = try await Self.call(gw, "/rest/raw/ok", deadline: .seconds(10))
                let elapsed = ContinuousClock.now - started
                #expect(r.status == 504, "got \(r.status) \(r.body) after \(elapsed)")
                #expect(r.json["error"] as? String == "upstream_timeout")
                #expect(elapsed < .seconds(8))
            } catch {
                Issue.record("a request waiting for a connection got no answer within 10 s (timeouts.response is 3 s): \(error)")
            }
            _ = held
        }
    }

    // MARK: 3. Connection: close

    @Test func connectionCloseAnswersAreFollowedByAFreshConnection() async throws {
        try await Self.withRaw { gw, upstream in
            for i in 0..<5 {
                let r = try await Self.call(gw, "/rest/raw/close?i=\(i)")
                #expect(r.status == 200, "call \(i)")
                #expect(r.body == "ok")
                #expect(r.headers.first(name: "x-upstream-connection") == String(i + 1), "call \(i) must use a new connection")
            }
            #expect(upstream.accepted == 5)
            #expect(upstream.requests.map(\.connection) == [1, 2, 3, 4, 5])
            #expect(upstream.requests.allSatisfy { $0.indexOnConnection == 1 })
        }
    }

    /// `Connection: close` without a length: the body is everything up to the close.
    @Test func closeDelimitedBodyArrivesWhole() async throws {
        try await Self.withRaw { gw, upstream in
            let r = try await Self.call(gw, "/rest/raw/eof-body")
            #expect(r.status == 200)
            #expect(r.body == "this body ends when the connection closes")
            let next = try await Self.call(gw, "/rest/raw/ok")
            #expect(next.status == 200)
            #expect(upstream.accepted == 2)
        }
    }

    // MARK: 4. Kept connections the upstream closes

    @Test func keptConnectionClosedByTheUpstreamIsReplaced() async throws {
        try await Self.withRaw { gw, upstream in
            let first = try await Self.call(gw, "/rest/raw/halfclose")
            #expect(first.status == 200)
            // The upstream shut its side (FIN) after a keep-alive answer; once the gateway has
            // seen it, it closes its side too, which the upstream sees.
            let seenByGateway = try await gw.waitUntil(timeout: .seconds(10)) { upstream.closedByPeer >= 1 }
            #expect(seenByGateway != nil, "the gateway should close a kept connection the upstream shut down")
            let next = try await Self.call(gw, "/rest/raw/ok")
            #expect(next.status == 200)
            #expect(next.headers.first(name: "x-upstream-connection") == "2")
            #expect(upstream.accepted == 2)
        }
    }

    /// The race: the upstream closes (FIN) a kept connection just as the next request arrives on it.
    @Test func requestOnAKeptConnectionTheUpstreamClosesIsRetriedOnAFreshOne() async throws {
        try await Self.withRaw { gw, upstream in
            #expect(try await Self.call(gw, "/rest/raw/drop-second").status == 200)
            let second = try await Self.call(gw, "/rest/raw/drop-second", method: .POST, body: .bytes(ByteBuffer(string: #"{"n":2}"#)))
            #expect(second.status == 200, "a replayable request on a stale kept connection must be retried once: \(second.body)")
            let seen = upstream.requests
            #expect(seen.map(\.connection) == [1, 1, 2])
            #expect(seen.last?.bodyBytes == 7, "the retry carries the same body")
            #expect(upstream.accepted == 2)
        }
    }

    /// The same race when the upstream's close is a reset (what a kernel sends when a socket is
    /// closed with unread data, e.g. the request that just arrived).
    @Test func requestOnAKeptConnectionTheUpstreamResetsIsRetriedOnAFreshOne() async throws {
        try await Self.withRaw { gw, upstream in
            #expect(try await Self.call(gw, "/rest/raw/reset-second").status == 200)
            let second = try await Self.call(gw, "/rest/raw/reset-second", method: .POST, body: .bytes(ByteBuffer(string: #"{"n":2}"#)))
            #expect(second.status == 200, "a replayable request on a reset kept connection must be retried once: \(second.status) \(second.body)")
            #expect(upstream.requests.map(\.connection) == [1, 1, 2])
        }
    }

    /// An answer that had begun (head and part of its body) and was then cut is not a stale
    /// connection: the upstream processed the request, so it must not be sent again.
    @Test func answerCutShortIsNotSentAgain() async throws {
        try await Self.withRaw { gw, upstream in
            #expect(try await Self.call(gw, "/rest/raw/cut-second").status == 200)
            let second = try await Self.call(gw, "/rest/raw/cut-second", method: .POST, body: .bytes(ByteBuffer(string: #"{"charge":"once"}"#)))
            #expect(upstream.requests.count == 2, "the POST reached the upstream \(upstream.requests.count - 1) times")
            #expect(second.status == 502)
            #expect(second.json["error"] as? String == "upstream_unreachable")
        }
    }

    // MARK: 5. Large streamed answers

    @Test func largeChunkedAnswerArrivesByteExactAndTheUpstreamStaysUsable() async throws {
        try await Self.withRaw(connection: "    timeouts: { response: 5s }") { gw, upstream in
            let size = 8 << 20
            var request = HTTPClientRequest(url: gw.baseURL + "/rest/raw/big?size=\(size)")
            request.headers.add(name: "Authorization", value: "Bearer " + gw.token())
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
            #expect(response.status == .ok)
            var hasher = SHA256()
            var received = 0
            for try await chunk in response.body {
                received += chunk.readableBytes
                chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            }
            let sent = try #require(upstream.sent.withLock { $0.first })
            #expect(sent.bytes == size)
            #expect(received == size)
            #expect(RawUpstream.hex(hasher.finalize()) == sent.sha256, "the body must arrive byte-exact")
            let next = try await Self.call(gw, "/rest/raw/ok", deadline: .seconds(20))
            #expect(next.status == 200, "a call after a large streamed answer must succeed: \(next.status) \(next.body)")
        }
    }

    @Test func largeAnswerWithContentLengthStreamsByteExact() async throws {
        try await Self.withRaw(connection: "    timeouts: { response: 5s }") { gw, upstream in
            let size = 3 << 20 + 123
            let r = try await Self.call(gw, "/rest/raw/big?size=\(size)&cl=1", deadline: .seconds(60))
            #expect(r.status == 200)
            #expect(r.headers.first(name: "content-length") == String(size))
            #expect(r.buffer.readableBytes == size)
            let sent = try #require(upstream.sent.withLock { $0.first })
            #expect(Self.sha256(r.buffer) == sent.sha256)
            let next = try await Self.call(gw, "/rest/raw/ok", deadline: .seconds(20))
            #expect(next.status == 200, "a call after a large streamed answer must succeed: \(next.status) \(next.body)")
        }
    }

    /// A streamed answer whose end arrives while the caller's side is still full (100 one-byte
    /// chunks and the end in one read, more than the body's buffer holds before it pushes back):
    /// the connection goes back to the pool and must still read the next answer.
    @Test func streamedAnswerThatEndsWhileTheCallerIsBehindLeavesAUsableConnection() async throws {
        try await Self.withRaw(connection: "    timeouts: { response: 3s }") { gw, upstream in
            for round in 0..<3 {
                let many = try await Self.call(gw, "/rest/raw/manychunks?n=100")
                #expect(many.status == 200, "round \(round)")
                #expect(many.body == String(repeating: "0123456789", count: 10), "round \(round)")
                let before = upstream.requests.count
                let next = try await Self.call(gw, "/rest/raw/ok")
                let reached = upstream.requests.count > before
                #expect(
                    next.status == 200,
                    "round \(round): the next call on the kept connection got \(next.status) \(next.body) (the upstream \(reached ? "did" : "did not") receive it and answered at once)")
            }
        }
    }

    // MARK: 6. A caller hanging up mid-stream

    @Test func callerHangingUpMidStreamDoesNotBreakLaterCalls() async throws {
        try await Self.withRaw(gateway: """
            gateway:
              limits:
                max_connections_per_upstream: 1
            """) { gw, upstream in
            let request = "GET /rest/raw/endless HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(gw.token())\r\n\r\n"
            let read = try await HangingUpClient.readThenHangUp(port: gw.server.port, request: request, atLeast: 256 << 10)
            #expect(read >= 256 << 10, "the endless answer should stream to the caller before it hangs up")
            // The gateway must give up the upstream connection (it can never be reused).
            let released = try await gw.waitUntil(timeout: .seconds(10)) { upstream.open == 0 }
            #expect(released != nil, "the abandoned upstream connection should be closed")
            // With one slot per upstream, a leaked slot would make this wait forever.
            let next = try await Self.call(gw, "/rest/raw/ok", deadline: .seconds(10))
            #expect(next.status == 200)
            #expect(upstream.accepted == 2)
        }
    }

    // MARK: 7. Streamed request bodies

    @Test func chunkedUploadReachesTheUpstreamByteExact() async throws {
        try await Self.withRaw { gw, upstream in
            var chunks: [ByteBuffer] = []
            var whole = ByteBuffer()
            for i in 0..<48 {  // 48 × 64 KiB = 3 MiB, over max_replay_body (1 MiB)
                var chunk = RawUpstream.block
                chunk.setInteger(UInt64(i), at: chunk.readerIndex)
                chunks.append(chunk)
                whole.writeImmutableBuffer(chunk)
            }
            let r = try await Self.call(gw, "/rest/raw/upload", method: .POST, body: .stream(chunks.async, length: .unknown), deadline: .seconds(60))
            #expect(r.status == 200)
            #expect(r.json["bytes"] as? Int == 3 << 20)
            #expect(r.json["sha256"] as? String == Self.sha256(whole))
            #expect(r.json["transfer_encoding"] as? String == "chunked")
            #expect(r.json["content_length"] as? String == "")
            // And once more on the same connection.
            let again = try await Self.call(gw, "/rest/raw/ok")
            #expect(again.status == 200)
            #expect(upstream.accepted == 1)
        }
    }

    /// `n` chunks of `size` bytes each, and the whole they make.
    static func chunks(_ n: Int, of size: Int) -> ([ByteBuffer], ByteBuffer) {
        var whole = ByteBuffer()
        let parts = (0..<n).map { i -> ByteBuffer in
            var chunk = RawUpstream.block.getSlice(at: RawUpstream.block.readerIndex, length: size)!
            chunk.setInteger(UInt64(i), at: chunk.readerIndex)
            whole.writeImmutableBuffer(chunk)
            return chunk
        }
        return (parts, whole)
    }

    /// Issue 20, fourth finding: a chunked body over the connection's limit used to reach the
    /// upstream (head and first chunks) before the 413. Within the read-ahead it now never does.
    @Test func aChunkedBodyOverTheLimitWithinTheReadAheadNeverReachesTheUpstream() async throws {
        try await Self.withRaw(connection: "    max_request_body: 64KiB") { gw, upstream in
            let (parts, _) = Self.chunks(25, of: 4096)  // 100 KiB
            let r = try await Self.call(gw, "/rest/raw/upload", method: .POST, body: .stream(parts.async, length: .unknown))
            #expect(r.status == 413)
            #expect(r.json["error"] as? String == "payload_too_large")
            #expect(upstream.heads == 0 && upstream.accepted == 0, "the upstream heard of a refused body: \(upstream.heads) head(s), \(upstream.accepted) connection(s)")
        }
    }

    /// A chunked body that ends within the read-ahead goes upstream whole, with its length.
    @Test func aSmallChunkedBodyGoesUpstreamWholeWithItsLength() async throws {
        try await Self.withRaw { gw, upstream in
            let (parts, whole) = Self.chunks(5, of: 1000)
            let r = try await Self.call(gw, "/rest/raw/upload", method: .POST, body: .stream(parts.async, length: .unknown))
            #expect(r.status == 200)
            #expect(r.json["bytes"] as? Int == 5000 && r.json["sha256"] as? String == Self.sha256(whole))
            #expect(r.json["content_length"] as? String == "5000")
            #expect(r.json["transfer_encoding"] as? String == "")
        }
    }

    /// Past the read-ahead a body streams; over the limit later, the upstream request is cut
    /// short of its last chunk (the upstream never sees a whole request) and its connection closed.
    @Test func aChunkedBodyOverTheLimitBeyondTheReadAheadIsCutShortOfItsLastChunk() async throws {
        try await Self.withRaw(gateway: "gateway: { limits: { max_replay_body: 16KiB } }", connection: "    max_request_body: 256KiB") { gw, upstream in
            let (parts, _) = Self.chunks(64, of: 16384)  // 1 MiB
            let r = try? await Self.call(gw, "/rest/raw/upload", method: .POST, body: .stream(parts.async, length: .unknown))
            if let r { #expect(r.status == 413, "\(r.status) \(r.body)") }
            #expect(upstream.heads == 1, "the body was streamed (past the read-ahead)")
            let closed = try await gw.waitUntil(timeout: .seconds(10)) { upstream.closedByPeer == 1 }
            #expect(closed != nil, "the gateway did not close the cut upstream connection")
            #expect(upstream.requests.isEmpty, "the upstream saw a whole request: \(upstream.requests.map(\.bodyBytes))")
        }
    }

    @Test func uploadOfKnownLengthAboveTheReplayLimitStreamsByteExact() async throws {
        try await Self.withRaw { gw, upstream in
            var whole = ByteBuffer()
            for i in 0..<48 {
                var chunk = RawUpstream.block
                chunk.setInteger(UInt64(1000 + i), at: chunk.readerIndex)
                whole.writeImmutableBuffer(chunk)
            }
            let r = try await Self.call(gw, "/rest/raw/upload", method: .PUT, body: .bytes(whole), deadline: .seconds(60))
            #expect(r.status == 200)
            #expect(r.json["bytes"] as? Int == 3 << 20)
            #expect(r.json["sha256"] as? String == Self.sha256(whole))
            #expect(r.json["content_length"] as? String == String(3 << 20))
            #expect(upstream.requests.first?.headers.first(name: "transfer-encoding") == nil)
        }
    }

    // MARK: 8. HEAD

    @Test func headAnswersHaveNoBodyAndKeepTheConnectionUsable() async throws {
        try await Self.withRaw(connection: "    timeouts: { response: 3s }") { gw, upstream in
            for name in ["head", "head-big"] {
                let length = name == "head" ? 1234 : 1_000_000
                let head = try await Self.call(gw, "/rest/raw/\(name)", method: .HEAD)
                #expect(head.status == 200, "\(name)")
                #expect(head.buffer.readableBytes == 0, "\(name)")
                #expect(head.headers.first(name: "x-head-test") == "yes", "\(name)")
                #expect(head.headers.first(name: "content-type") == "application/octet-stream", "\(name)")
                // RFC 9110 §8.6: a Content-Length in a HEAD answer must be the GET body's length.
                let advertised = head.headers.first(name: "content-length")
                #expect(advertised == nil || advertised == String(length), "\(name): HEAD answered Content-Length \(advertised ?? "-"), the upstream said \(length)")
                // The next answer on the same connection is read correctly (the decoder knew it was HEAD).
                let get = try await Self.call(gw, "/rest/raw/\(name)")
                #expect(get.status == 200, "\(name)")
                #expect(get.buffer.readableBytes == length, "\(name)")
            }
            #expect(upstream.accepted == 1, "HEAD answers must leave the connection reusable")
            #expect(upstream.requests.map(\.method) == [.HEAD, .GET, .HEAD, .GET])
        }
    }

    // MARK: 9. Broken upstreams and timeouts

    @Test func malformedAnswerIs502() async throws {
        try await Self.withRaw { gw, upstream in
            let r = try await Self.call(gw, "/rest/raw/garbage")
            #expect(r.status == 502)
            #expect(r.headers.first(name: "content-type") == "application/json")
            #expect(r.json["error"] as? String == "upstream_unreachable")
            #expect(r.json["connection"] as? String == "raw")
            let next = try await Self.call(gw, "/rest/raw/ok")
            #expect(next.status == 200)
        }
    }

    @Test func upstreamThatNeverAnswersIs504AfterTheResponseTimeout() async throws {
        // 1 s, not less: the follow-up call must get its head in time even on a loaded machine.
        try await Self.withRaw(connection: "    timeouts: { response: 1s }") { gw, upstream in
            let started = ContinuousClock.now
            let r = try await Self.call(gw, "/rest/raw/silent", deadline: .seconds(20))
            let elapsed = ContinuousClock.now - started
            #expect(r.status == 504)
            #expect(r.json["error"] as? String == "upstream_timeout")
            #expect(elapsed >= .milliseconds(950), "answered before the response timeout: \(elapsed)")
            #expect(elapsed < .seconds(10), "the response timeout took \(elapsed)")
            #expect(upstream.requests.count == 1, "a timed-out request is not retried")
            // The gateway still works (a few tries: on a loaded machine one call may need more than 1 s).
            var status = 0
            for _ in 0..<3 where status != 200 { status = try await Self.call(gw, "/rest/raw/ok").status }
            #expect(status == 200)
        }
    }

    @Test func silenceInsideABodyEndsTheCallersStream() async throws {
        try await Self.withRaw(gateway: """
            gateway:
              timeouts:
                idle: 500ms
            """) { gw, upstream in
            try await Self.warmKeys(gw)
            // Chunked: the head and 1000 bytes arrive, then silence; the caller's stream must end in error.
            for path in ["/rest/raw/stall", "/rest/raw/stall-cl?cl=200000"] {
                var request = HTTPClientRequest(url: gw.baseURL + path)
                request.headers.add(name: "Authorization", value: "Bearer " + gw.token())
                let started = ContinuousClock.now
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(20))
                #expect(response.status == .ok, "\(path)")
                var received = 0
                var failed = false
                do {
                    for try await chunk in response.body { received += chunk.readableBytes }
                } catch {
                    failed = true
                }
                let elapsed = ContinuousClock.now - started
                #expect(failed || received < 200_000, "\(path): the stream must end early, got \(received) bytes and no error")
                #expect(received >= 1000 || failed, "\(path)")
                #expect(elapsed < .seconds(10), "\(path): the idle timeout took \(elapsed)")
            }
            // A small answer (read whole) cut by silence: 504.
            let small = try await Self.call(gw, "/rest/raw/stall-cl?cl=500", deadline: .seconds(20))
            #expect(small.status == 504)
            #expect(small.json["error"] as? String == "upstream_timeout")
        }
    }

    /// `timeouts.idle` is silence inside a body; the wait for the head is `timeouts.response`.
    @Test func idleTimeoutDoesNotShortenTheWaitForTheHead() async throws {
        try await Self.withRaw(gateway: """
            gateway:
              timeouts:
                idle: 500ms
            """, connection: "    timeouts: { response: 10s }") { gw, upstream in
            try await Self.warmKeys(gw)
            let started = ContinuousClock.now
            let r = try await Self.call(gw, "/rest/raw/late?ms=1500", deadline: .seconds(20))
            let elapsed = ContinuousClock.now - started
            #expect(r.status == 200, "an answer whose head comes after 1.5 s, within timeouts.response (10 s), got \(r.status) \(r.body) after \(elapsed)")
        }
    }

    /// 1xx informational heads (103 Early Hints, 100 Continue) are not the answer.
    @Test func informationalHeadsAreSkipped() async throws {
        try await Self.withRaw(connection: "    timeouts: { response: 3s }") { gw, upstream in
            let r = try await Self.call(gw, "/rest/raw/early-hints")
            #expect(r.status == 200)
            #expect(r.body == "ok")
            let next = try await Self.call(gw, "/rest/raw/ok")
            #expect(next.status == 200)
            #expect(upstream.accepted == 1)
        }
    }

    // MARK: 10. Unreachable upstreams

    @Test func refusedPortIs502() async throws {
        let reserved = try ReservedPort()
        let harness = try await GatewayHarness.start(connections: """
              - name: refused
                kind: application
                upstream: http://127.0.0.1:\(reserved.port)/u
                auth: { strategy: none }
            """)
        do {
            for _ in 0..<3 {
                let r = try await Self.call(harness, "/rest/refused/x", deadline: .seconds(10))
                #expect(r.status == 502)
                #expect(r.json["error"] as? String == "upstream_unreachable")
                #expect(r.json["connection"] as? String == "refused")
            }
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
        withExtendedLifetime(reserved) {}
    }

    /// A connect that hangs (the upstream's accept queue is full, SYNs are dropped) ends at `timeouts.connect`: 504.
    @Test func connectTimeoutIs504() async throws {
        let listener = try #require(try await SaturatedListener.start(), "could not fill a loopback accept queue")
        let harness = try await GatewayHarness.start(connections: """
              - name: stuck
                kind: application
                upstream: http://127.0.0.1:\(listener.port)/u
                auth: { strategy: none }
            """, gateway: """
            gateway:
              timeouts:
                connect: 300ms
            """)
        do {
            let started = ContinuousClock.now
            let r = try await Self.call(harness, "/rest/stuck/x", deadline: .seconds(20))
            let elapsed = ContinuousClock.now - started
            #expect(r.status == 504)
            #expect(r.json["error"] as? String == "upstream_timeout")
            #expect(elapsed >= .milliseconds(250), "answered before the connect timeout: \(elapsed)")
            #expect(elapsed < .seconds(10), "the connect timeout took \(elapsed)")
        } catch {
            await harness.stop()
            await listener.stop()
            throw error
        }
        await harness.stop()
        await listener.stop()
    }

    /// An upstream that accepts and closes at once (a server at its limit, a proxy without a
    /// backend) answers 502 every time, and never uses up the per-upstream slots.
    @Test func upstreamThatClosesOnAcceptDoesNotExhaustTheSlots() async throws {
        try await Self.withRaw(gateway: """
            gateway:
              limits:
                max_connections_per_upstream: 1
            """, closeOnAccept: true) { gw, upstream in
            for i in 0..<30 {
                let r: Answer
                do {
                    r = try await Self.call(gw, "/rest/raw/ok?i=\(i)", deadline: .seconds(5))
                } catch {
                    Issue.record("call \(i) got no answer within 5 s (\(error)); the upstream accepted \(upstream.accepted) connections so far")
                    return
                }
                #expect(r.status == 502, "call \(i)")
                #expect(r.json["error"] as? String == "upstream_unreachable", "call \(i)")
            }
            #expect(upstream.accepted >= 30)
        }
    }
}
