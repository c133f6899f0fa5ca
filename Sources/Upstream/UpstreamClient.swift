public import AsyncHTTPClient
public import NIOCore
import NIOHTTP1

/// How the proxy reaches upstreams: plain-HTTP upstreams (the common case: services next to
/// the gateway) through its own keep-alive HTTP/1.1 client on SwiftNIO, which costs about
/// half of AsyncHTTPClient's per-request machinery (see bench/results/notes.md); HTTPS
/// upstreams through AsyncHTTPClient (TLS, HTTP/2).
public final class UpstreamClient: Sendable {
    public let pool: HTTP1ConnectionPool
    public let fallback: HTTPClient

    public init(pool: HTTP1ConnectionPool, fallback: HTTPClient) {
        self.pool = pool
        self.fallback = fallback
    }

    /// The answer's head, with its body to stream. `timeout`: until the response head.
    public func execute(_ request: UpstreamRequest, timeout: Duration) async throws -> HTTPClientResponse {
        guard request.origin.isPlainHTTP else { return try await viaAsyncHTTPClient(request, timeout: timeout) }
        // A body in memory (or none): the one exchange path, with its stale-connection retry.
        if request.isReplayable {
            return try await start(request, timeout: timeout, on: pool.group.next()).get().clientResponse
        }
        // A streamed body is sent once (it cannot be sent again): no retry.
        let key = HTTP1ConnectionPool.Key(host: request.origin.host, port: request.origin.port)
        let deadline = ContinuousClock.now + timeout  // one deadline for the wait and the answer's head
        let (connection, _) = try await pool.acquire(key, deadline: deadline)
        return try await exchange(request, on: connection, timeout: max(deadline - ContinuousClock.now, .milliseconds(1)))
    }

    /// A plain-HTTP request with a body already in memory (or none), without a task (the
    /// proxy's event-loop driver; `execute` awaits it too): one deadline for the wait for a
    /// connection and for the answer's head, and one retry on a fresh connection when a kept
    /// one turns out closed. The future completes on `loop`. `relay`: takes a streamed answer it accepts (the future
    /// then completes with ``UpstreamResponseStart/Body/relayed``).
    public func start(
        _ request: UpstreamRequest, timeout: Duration, relay: (any UpstreamBodyRelay)? = nil, on loop: any EventLoop
    ) -> EventLoopFuture<UpstreamResponseStart> {
        precondition(request.origin.isPlainHTTP && request.isReplayable)
        let key = HTTP1ConnectionPool.Key(host: request.origin.host, port: request.origin.port)
        let deadline = NIODeadline.now() + .nanoseconds(timeout.nanoseconds)
        let (head, whole, _) = Self.wireHead(request)
        return attempt(head: head, body: whole, relay: relay, key: key, deadline: deadline, retried: false, on: loop)
    }

    private func attempt(
        head: HTTPRequestHead, body: ByteBuffer?, relay: (any UpstreamBodyRelay)?, key: HTTP1ConnectionPool.Key, deadline: NIODeadline, retried: Bool,
        on loop: any EventLoop
    ) -> EventLoopFuture<UpstreamResponseStart> {
        if let idle = pool.takeIdle(key, on: loop) {
            return exchange(head: head, body: body, relay: relay, on: idle, reused: true, key: key, deadline: deadline, retried: retried, loop: loop)
        }
        return pool.acquire(key, deadline: deadline, on: loop).flatMap { connection, reused in
            self.exchange(head: head, body: body, relay: relay, on: connection, reused: reused, key: key, deadline: deadline, retried: retried, loop: loop)
        }
    }

    private func exchange(
        head: HTTPRequestHead, body: ByteBuffer?, relay: (any UpstreamBodyRelay)?, on connection: HTTP1ConnectionPool.Connection, reused: Bool,
        key: HTTP1ConnectionPool.Key, deadline: NIODeadline, retried: Bool, loop: any EventLoop
    ) -> EventLoopFuture<UpstreamResponseStart> {
        let promise = loop.makePromise(of: UpstreamResponseStart.self)
        let handler = connection.handler
        let remaining = max(deadline - .now(), .milliseconds(1))
        if connection.channel.eventLoop.inEventLoop {
            handler.value.start(head: head, body: body, bodyFollows: false, responseTimeout: remaining, relay: relay, promise: promise)
        } else {
            connection.channel.eventLoop.execute {
                handler.value.start(head: head, body: body, bodyFollows: false, responseTimeout: remaining, relay: relay, promise: promise)
            }
        }
        return promise.futureResult.flatMapError { error in
            // A kept connection the upstream had just closed: once more on a fresh one.
            if case UpstreamTransportError.closedEarly = error, reused, !retried {
                return self.attempt(head: head, body: body, relay: relay, key: key, deadline: deadline, retried: true, on: loop)
            }
            return loop.makeFailedFuture(error)
        }
    }

    /// The request head as sent (`Host`, `Content-Length` or chunked set), with the body in
    /// memory or to stream.
    private static func wireHead(_ request: UpstreamRequest) -> (HTTPRequestHead, ByteBuffer?, (any AsyncSequence<ByteBuffer, any Error> & Sendable)?) {
        var headers = request.headers
        headers.replaceOrAdd(name: "host", value: request.origin.hostHeader)
        let whole: ByteBuffer?
        let stream: (any AsyncSequence<ByteBuffer, any Error> & Sendable)?
        switch request.body {
        case .none:
            switch request.method {
            case .POST, .PUT, .PATCH: headers.replaceOrAdd(name: "content-length", value: "0")
            default: break
            }
            (whole, stream) = (nil, nil)
        case .bytes(let bytes):
            headers.replaceOrAdd(name: "content-length", value: String(bytes.readableBytes))
            (whole, stream) = (bytes, nil)
        case .stream(let body, let length):
            if let length { headers.replaceOrAdd(name: "content-length", value: String(length)) } else {
                headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
            }
            (whole, stream) = (nil, body)
        }
        return (HTTPRequestHead(version: .http1_1, method: request.method, uri: request.target, headers: headers), whole, stream)
    }

    private func exchange(_ request: UpstreamRequest, on connection: HTTP1ConnectionPool.Connection, timeout: Duration) async throws -> HTTPClientResponse {
        let (head, whole, stream) = Self.wireHead(request)
        let eventLoop = connection.channel.eventLoop
        let handler = connection.handler
        let promise = eventLoop.makePromise(of: UpstreamResponseStart.self)
        let responseTimeout = TimeAmount.nanoseconds(timeout.nanoseconds)
        let follows = stream != nil
        eventLoop.execute {
            handler.value.start(head: head, body: whole, bodyFollows: follows, responseTimeout: responseTimeout, promise: promise)
        }
        if let stream {
            do {
                for try await chunk in stream {
                    let written = eventLoop.makePromise(of: Void.self)
                    eventLoop.execute { handler.value.writeBodyChunk(chunk, promise: written) }
                    try await written.futureResult.get()
                }
                let ended = eventLoop.makePromise(of: Void.self)
                eventLoop.execute { handler.value.finishRequest(promise: ended) }
                try await ended.futureResult.get()
            } catch let error as UpstreamTransportError {
                // The upstream stopped reading: it may have answered already (below).
                _ = error
            } catch {
                // The caller's body failed (too large, connection gone): this exchange is over.
                eventLoop.execute { handler.value.abort(error) }
                _ = try? await promise.futureResult.get()
                throw error
            }
        }
        return try await promise.futureResult.get().clientResponse
    }

    private func viaAsyncHTTPClient(_ request: UpstreamRequest, timeout: Duration) async throws -> HTTPClientResponse {
        var upstream = HTTPClientRequest(url: request.url)
        upstream.method = request.method
        upstream.headers = request.headers
        switch request.body {
        case .none: break
        case .bytes(let bytes): upstream.body = .bytes(bytes)
        case .stream(let body, let length): upstream.body = .stream(body, length: length.map { .known(Int64($0)) } ?? .unknown)
        }
        return try await fallback.execute(upstream, timeout: .nanoseconds(timeout.nanoseconds))
    }

    public func shutdown() async {
        await pool.shutdown()
    }
}

extension UpstreamResponseStart {
    /// The answer as the proxy's async path handles it.
    public var clientResponse: HTTPClientResponse {
        let body: HTTPClientResponse.Body
        switch self.body {
        case .whole(let bytes): body = .bytes(bytes)
        case .stream(let sequence): body = .stream(sequence)
        case .relayed: body = .bytes(ByteBuffer())  // not reached: the relay has the body
        }
        return HTTPClientResponse(version: head.version, status: head.status, headers: head.headers, body: body)
    }
}
