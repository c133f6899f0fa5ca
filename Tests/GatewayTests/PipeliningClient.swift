import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchboardTesting

/// A bare HTTP/1.1 client on one TCP connection: sends several requests in one write (one
/// buffer: pipelining), and hands out the answers, parsed, in the order they arrive.
final class PipeliningClient: Sendable {
    struct Request: Sendable {
        var method: HTTPMethod = .GET
        var target: String
        var headers: [(String, String)] = []
        /// Sent with `Content-Length`.
        var body: String?

        /// The parts to write.
        var parts: [HTTPClientRequestPart] {
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: target, headers: HTTPHeaders(headers))
            guard let body else { return [.head(head), .end(nil)] }
            head.headers.replaceOrAdd(name: "Content-Length", value: String(body.utf8.count))
            return [.head(head), .body(.byteBuffer(ByteBuffer(string: body))), .end(nil)]
        }

        /// The request as it goes on the wire (for clients that write bytes themselves).
        var wire: String {
            var lines = ["\(method.rawValue) \(target) HTTP/1.1"] + headers.map { "\($0.0): \($0.1)" }
            if let body { lines.append("Content-Length: \(body.utf8.count)") }
            return lines.joined(separator: "\r\n") + "\r\n\r\n" + (body ?? "")
        }
    }

    typealias Response = HTTPAnswer

    enum Failure: Error, CustomStringConvertible {
        case noAnswer(within: Duration)
        var description: String {
            switch self {
            case .noAnswer(let d): "no (further) answer within \(d)"
            }
        }
    }

    private let channel: any Channel
    private let collector: NIOLoopBound<Collector>

    private init(channel: any Channel, collector: NIOLoopBound<Collector>) {
        self.channel = channel
        self.collector = collector
    }

    static func connect(port: Int) async throws -> PipeliningClient {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let added = loop.makePromise(of: NIOLoopBound<Collector>.self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let collector = Collector()
                        try channel.pipeline.syncOperations.addHandler(OneWritePerFlush())
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(collector)
                        added.succeed(NIOLoopBound(collector, eventLoop: channel.eventLoop))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
        } catch {
            added.fail(error)
            throw error
        }
        let collector = try await added.futureResult.get()
        return PipeliningClient(channel: channel, collector: collector)
    }

    /// Sends `requests` in one write.
    func send(_ requests: [Request]) async throws {
        precondition(!requests.isEmpty)
        let parts = requests.flatMap(\.parts)
        for part in parts.dropLast() { channel.write(part, promise: nil) }
        try await channel.writeAndFlush(parts.last!)
    }

    /// Has `request` sent the moment the next answer has fully arrived: from the event loop,
    /// with no hop to a task in between (a client as quick as can be).
    func sendOnNextAnswer(_ request: Request) async throws {
        let collector = self.collector
        try await channel.eventLoop.submit { collector.value.followUp = request }.get()
    }

    /// Closes the sending side (FIN); answers can still arrive.
    func finishSending() async throws {
        try await channel.close(mode: .output)
    }

    func close() async {
        try? await channel.close()
    }

    /// The next whole answer; nil when the connection closed first. Throws when none came within `deadline`.
    func next(within deadline: Duration = .seconds(15)) async throws -> Response? {
        let collector = self.collector
        return try await channel.eventLoop.flatSubmit {
            collector.value.next(within: deadline, on: collector.eventLoop)
        }.get()
    }

    /// Up to `count` answers: fewer when the connection closed, or when the next one did not come within `deadline`.
    func next(_ count: Int, within deadline: Duration = .seconds(15)) async throws -> [Response] {
        var out: [Response] = []
        do {
            while out.count < count, let response = try await next(within: deadline) { out.append(response) }
        } catch Failure.noAnswer {}
        return out
    }

    /// Assembles answers (and sends the follow-up request the moment one ends); lives on the channel's event loop.
    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart

        private var head: HTTPResponseHead?
        private var body = ByteBuffer()
        private var ready = CircularBuffer<Response>()
        private var closed = false
        private var waiter: (promise: EventLoopPromise<Response?>, timer: Scheduled<Void>)?
        /// Written as soon as the next answer ends.
        var followUp: Request?

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
                if let followUp {
                    self.followUp = nil
                    let parts = followUp.parts
                    for part in parts.dropLast() { context.write(NIOAny(part), promise: nil) }
                    context.writeAndFlush(NIOAny(parts.last!), promise: nil)
                }
                ready.append(Response(status: Int(head.status.code), headers: head.headers, buffer: body))
                deliver()
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            closed = true
            deliver()
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        func next(within deadline: Duration, on loop: any EventLoop) -> EventLoopFuture<Response?> {
            precondition(waiter == nil, "one reader at a time")
            let promise = loop.makePromise(of: Response?.self)
            let bound = NIOLoopBound(self, eventLoop: loop)
            let timer = loop.scheduleTask(in: TestHTTP.timeAmount(deadline)) {
                bound.value.waiter = nil
                promise.fail(Failure.noAnswer(within: deadline))
            }
            waiter = (promise, timer)
            deliver()
            return promise.futureResult
        }

        private func deliver() {
            guard let (promise, timer) = waiter else { return }
            if let response = ready.popFirst() {
                waiter = nil
                timer.cancel()
                promise.succeed(response)
            } else if closed {
                waiter = nil
                timer.cancel()
                promise.succeed(nil)
            }
        }
    }

    /// Joins everything written up to a flush into one buffer, so the requests leave in one write.
    private final class OneWritePerFlush: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private var pending = ByteBuffer()
        private var promises: [EventLoopPromise<Void>] = []

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            var buffer = unwrapOutboundIn(data)
            pending.writeBuffer(&buffer)
            if let promise { promises.append(promise) }
        }

        func flush(context: ChannelHandlerContext) {
            let buffer = pending
            let promises = self.promises
            pending = ByteBuffer()
            self.promises = []
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { result in
                for promise in promises { promise.completeWith(result) }
            }
        }
    }
}
