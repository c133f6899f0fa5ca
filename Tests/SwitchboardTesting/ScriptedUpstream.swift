public import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// An HTTP/1.1 upstream on bare SwiftNIO whose answers a test scripts: each request (whole,
/// body included) goes to ``Script``, whose ``Reply`` is written after an optional delay,
/// with a `Content-Length` or chunked with pauses between the chunks. Every answer carries
/// `Date:` ``date`` (a fixed day in 2000), which the gateway must replace with its own clock
/// (a gateway answer carrying it shows the rule broken). Records every request; ``stop()``
/// closes the listener and every open connection.
public final class ScriptedUpstream: Sendable {
    /// The `Date` of every answer.
    public static let date = "Sat, 01 Jan 2000 00:00:00 GMT"

    public struct Request: Sendable {
        public var method: String
        /// Path and query, as received.
        public var uri: String
        /// Header names lowercased, values in order.
        public var headers: [(name: String, value: String)]
        public var body: ByteBuffer
        /// 1-based number of the TCP connection it came on (in accept order).
        public var connection: Int

        /// The values of header `name` (any case), joined by ", "; nil when absent.
        public func header(_ name: String) -> String? {
            let values = headers.filter { $0.name == name.lowercased() }.map(\.value)
            return values.isEmpty ? nil : values.joined(separator: ", ")
        }

        public var path: Substring { uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0] }
        public var query: String? { uri.firstIndex(of: "?").map { String(uri[uri.index(after: $0)...]) } }
    }

    /// A piece of a chunked answer.
    public enum Piece: Sendable {
        case data(ByteBuffer)
        case pause(Duration)
        /// Closes the connection there: an answer cut short.
        case close
    }

    public enum Content: Sendable {
        /// Sent with `Content-Length`.
        case whole(ByteBuffer)
        /// Sent chunked, piece by piece.
        case chunked([Piece])
    }

    public struct Reply: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var content: Content
        /// Wait this long before the head.
        public var delay: Duration

        public init(status: Int = 200, headers: [(String, String)] = [], content: Content, delay: Duration = .zero) {
            self.status = status
            self.headers = headers
            self.content = content
            self.delay = delay
        }

        public static func text(_ text: String, status: Int = 200, headers: [(String, String)] = [], delay: Duration = .zero) -> Reply {
            Reply(status: status, headers: [("Content-Type", "text/plain")] + headers, content: .whole(ByteBuffer(string: text)), delay: delay)
        }
    }

    public typealias Script = @Sendable (Request) -> Reply

    private struct State {
        var listener: (any Channel)?
        var open: [Int: any Channel] = [:]
        var accepted = 0
        var requests: [Request] = []
        var completed = 0
    }

    private let state = Mutex(State())
    let script: Script

    private init(script: @escaping Script) {
        self.script = script
    }

    public var port: Int { state.withLock { $0.listener?.localAddress?.port ?? 0 } }
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    /// Every request received so far, in order.
    public var requests: [Request] { state.withLock { $0.requests } }
    /// Answers whose last byte the socket took (a caller that holds the upstream back keeps
    /// this from counting a large answer).
    public var completedAnswers: Int { state.withLock { $0.completed } }
    fileprivate func answerCompleted() { state.withLock { $0.completed += 1 } }
    /// TCP connections accepted so far.
    public var accepted: Int { state.withLock { $0.accepted } }

    public static func start(_ script: @escaping Script) async throws -> ScriptedUpstream {
        let upstream = ScriptedUpstream(script: script)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let number = upstream.opened(channel)
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(ScriptedUpstreamHandler(upstream: upstream, connection: number))
                    channel.closeFuture.whenComplete { _ in upstream.closed(number) }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        upstream.state.withLock { $0.listener = channel }
        return upstream
    }

    /// Closes the listener and every connection: the port refuses connections from now on.
    public func stop() async {
        let (listener, open) = state.withLock { state in
            defer { state.listener = nil; state.open = [:] }
            return (state.listener, Array(state.open.values))
        }
        try? await listener?.close()
        for channel in open { try? await channel.close() }
    }

    private func opened(_ channel: any Channel) -> Int {
        state.withLock { state in
            state.accepted += 1
            state.open[state.accepted] = channel
            return state.accepted
        }
    }

    private func closed(_ number: Int) {
        _ = state.withLock { $0.open.removeValue(forKey: number) }
    }

    fileprivate func received(_ request: Request) -> Reply {
        state.withLock { $0.requests.append(request) }
        return script(request)
    }
}

/// One connection of a ``ScriptedUpstream``; answers one request at a time, in order.
private final class ScriptedUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let upstream: ScriptedUpstream
    private let connection: Int
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    init(upstream: ScriptedUpstream, connection: Int) {
        self.upstream = upstream
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            guard let head else { return }
            self.head = nil
            let request = ScriptedUpstream.Request(
                method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name.lowercased(), $0.value) }, body: body,
                connection: connection)
            let reply = upstream.received(request)
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            if reply.delay > .zero {
                context.eventLoop.scheduleTask(in: .nanoseconds(Self.nanoseconds(reply.delay))) {
                    bound.value.answer(reply, keepAlive: head.isKeepAlive, context: boundContext.value)
                }
            } else {
                answer(reply, keepAlive: head.isKeepAlive, context: context)
            }
        }
    }

    private func answer(_ reply: ScriptedUpstream.Reply, keepAlive: Bool, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders(reply.headers)
        headers.replaceOrAdd(name: "Date", value: ScriptedUpstream.date)
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        switch reply.content {
        case .whole(let buffer):
            headers.replaceOrAdd(name: "Content-Length", value: String(buffer.readableBytes))
            context.write(wrapOutboundOut(.head(head(reply.status, headers))), promise: nil)
            if buffer.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil) }
            let upstream = self.upstream
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenSuccess { upstream.answerCompleted() }
        case .chunked(let pieces):
            headers.replaceOrAdd(name: "Transfer-Encoding", value: "chunked")
            context.writeAndFlush(wrapOutboundOut(.head(head(reply.status, headers))), promise: nil)
            send(pieces[...], context: context)
        }
    }

    /// Writes the pieces of a chunked answer, pausing where told, then its end.
    private func send(_ pieces: ArraySlice<ScriptedUpstream.Piece>, context: ChannelHandlerContext) {
        var rest = pieces
        while let piece = rest.popFirst() {
            switch piece {
            case .data(let buffer):
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            case .pause(let duration):
                let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
                let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
                let remaining = rest
                context.eventLoop.scheduleTask(in: .nanoseconds(Self.nanoseconds(duration))) {
                    guard boundContext.value.channel.isActive else { return }
                    bound.value.send(remaining, context: boundContext.value)
                }
                return
            case .close:
                context.close(promise: nil)
                return
            }
        }
        let upstream = self.upstream
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenSuccess { upstream.answerCompleted() }
    }

    private func head(_ status: Int, _ headers: HTTPHeaders) -> HTTPResponseHead {
        HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
    }

    private static func nanoseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
    }
}
