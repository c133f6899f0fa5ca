import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// How the proxy reaches upstreams: plain-HTTP upstreams (the common case: services next to
/// the gateway) through its own keep-alive HTTP/1.1 client on SwiftNIO, which costs about
/// half of AsyncHTTPClient's per-request machinery (see bench/results/notes.md); HTTPS
/// upstreams through AsyncHTTPClient (TLS, HTTP/2).
final class UpstreamClient: Sendable {
    let pool: HTTP1ConnectionPool
    let fallback: HTTPClient

    init(pool: HTTP1ConnectionPool, fallback: HTTPClient) {
        self.pool = pool
        self.fallback = fallback
    }

    /// The answer's head, with its body to stream. `timeout`: until the response head.
    func execute(_ request: UpstreamRequest, timeout: Duration) async throws -> HTTPClientResponse {
        guard request.origin.isPlainHTTP else { return try await viaAsyncHTTPClient(request, timeout: timeout) }
        let key = HTTP1ConnectionPool.Key(host: request.origin.host, port: request.origin.port)
        // One deadline for the wait for a free connection and for the answer's head.
        let deadline = ContinuousClock.now + timeout
        var retried = false
        while true {
            let (connection, reused) = try await pool.acquire(key, deadline: deadline)
            do {
                return try await exchange(request, on: connection, timeout: max(deadline - ContinuousClock.now, .milliseconds(1)))
            } catch UpstreamTransportError.closedEarly where reused && request.isReplayable && !retried {
                // A kept connection the upstream had just closed: once more on a fresh one.
                retried = true
            }
        }
    }

    private func exchange(_ request: UpstreamRequest, on connection: HTTP1ConnectionPool.Connection, timeout: Duration) async throws -> HTTPClientResponse {
        var headers = request.headers
        headers.replaceOrAdd(name: "host", value: request.origin.hostHeader)
        let whole: ByteBuffer?
        let stream: LimitedBody<RequestBodySequence>?
        switch request.body {
        case .none:
            if [.POST, .PUT, .PATCH].contains(request.method) { headers.replaceOrAdd(name: "content-length", value: "0") }
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
        let head = HTTPRequestHead(version: .http1_1, method: request.method, uri: request.target, headers: headers)
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
        let start = try await promise.futureResult.get()
        let body: HTTPClientResponse.Body
        switch start.body {
        case .whole(let bytes): body = .bytes(bytes)
        case .stream(let sequence): body = .stream(sequence)
        }
        return HTTPClientResponse(version: start.head.version, status: start.head.status, headers: start.head.headers, body: body)
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

    func shutdown() async {
        await pool.shutdown()
    }
}
