public import NIOCore
public import NIOHTTP1

/// The answer's beginning: its head and its body, which arrives as the caller reads it — or,
/// for a small answer of known length that is not an event stream, the whole body at once
/// (read on the event loop: no per-chunk hand-over to the caller's task).
public struct UpstreamResponseStart: Sendable {
    public enum Body: Sendable {
        case whole(ByteBuffer)
        case stream(UpstreamResponseBody)
        /// Handed part by part to the exchange's ``UpstreamBodyRelay``, which took the head too.
        case relayed
    }

    public var head: HTTPResponseHead
    public var body: Body

    /// Answers up to this size (with a `Content-Length`) arrive whole.
    public static let wholeLimit = 64 * 1024
}

/// Takes a streamed answer part by part on the caller's side, without a task (the proxy's
/// event-loop path). Called on the upstream connection's event loop, in order: `accepts`,
/// then `head`, `body`…, `flush` after each socket read, and `end` or `fail`.
public protocol UpstreamBodyRelay: Sendable {
    /// Whether this answer is relayed; if not, it streams as ``UpstreamResponseStart/Body/stream``.
    func accepts(_ head: HTTPResponseHead) -> Bool
    func head(_ head: HTTPResponseHead, control: UpstreamRelayControl)
    func body(_ chunk: ByteBuffer)
    /// The upstream's read ended: what was passed on may be flushed.
    func flush()
    func end()
    func fail(_ error: any Error)
}

/// The relay's hold on its exchange: back-pressure and giving up (any thread).
public struct UpstreamRelayControl: Sendable {
    let handler: NIOLoopBound<UpstreamExchangeHandler>
    let exchange: Int

    /// The caller's side is full: stop reading the upstream.
    public func pause() { run { $0.pauseReading(exchange: exchange) } }
    /// The caller's side drained.
    public func resume() { run { $0.resumeReading(exchange: exchange) } }
    /// The caller went away: the answer's rest is not wanted and the connection is not reused.
    public func abandon() { run { $0.bodyAbandoned(exchange: exchange) } }

    private func run(_ body: @escaping @Sendable (UpstreamExchangeHandler) -> Void) { handler.run(body) }
}

extension NIOLoopBound {
    /// Calls `body` with the value on its event loop: at once when already there, else queued
    /// (calls queued from one thread keep their order).
    public func run(_ body: @escaping @Sendable (Value) -> Void) {
        if eventLoop.inEventLoop {
            body(value)
        } else {
            let bound = self
            eventLoop.execute { body(bound.value) }
        }
    }
}

public typealias UpstreamResponseBody = NIOThrowingAsyncSequenceProducer<
    ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, UpstreamBodyDelegate
>

/// The last handler of an upstream connection's pipeline: one request/response exchange at a
/// time. The answer's body is handed out as an async sequence with back-pressure (no read
/// from the socket while the caller's side is full). Lives on its channel's event loop.
final class UpstreamExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private enum State {
        case idle
        case awaitingHead(EventLoopPromise<UpstreamResponseStart>)
        case collecting(EventLoopPromise<UpstreamResponseStart>, HTTPResponseHead, ByteBuffer)
        case streaming(UpstreamResponseBody.Source)
        case relaying(any UpstreamBodyRelay)
        case closed
    }

    private var state: State = .idle
    private var context: ChannelHandlerContext?
    private var requestDone = true
    private var responseDone = true
    private var keepAlive = true
    private var backpressured = false
    private var pendingRead = false
    /// When the head of the current answer is due (nil: not waiting for one).
    private var headDeadline: NIODeadline?
    /// One timer per connection, not one per request: it fires at the earliest deadline it was
    /// set for, and then either times the exchange out or sleeps until the current deadline.
    private var headTimer: Scheduled<Void>?
    private var headTimerFiresAt: NIODeadline = .distantFuture
    /// Numbers the exchanges on this connection, so a late call about an earlier answer's body
    /// (its consumer finishing after the connection was reused) touches nothing.
    private var exchange = 0
    /// The current exchange's relay, until its answer's head decides whether it is used.
    private var offeredRelay: (any UpstreamBodyRelay)?
    /// Called on the event loop when the exchange ended and the connection may be reused.
    var onReusable: (() -> Void)?
    /// Called on the event loop when the channel closed.
    var onClosed: (() -> Void)?

    var isIdle: Bool { if case .idle = state { return requestDone && responseDone } else { return false } }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Starts an exchange: writes the head (and a whole body, when there is one) and waits
    /// for the answer's head. `bodyFollows`: the caller streams the body, then calls `finishRequest`.
    /// `relay`: takes a streamed answer it accepts, instead of an async sequence.
    func start(
        head: HTTPRequestHead, body: ByteBuffer?, bodyFollows: Bool, responseTimeout: TimeAmount, relay: (any UpstreamBodyRelay)? = nil,
        promise: EventLoopPromise<UpstreamResponseStart>
    ) {
        guard let context, case .idle = state else {
            promise.fail(UpstreamTransportError.closedEarly)
            return
        }
        state = .awaitingHead(promise)
        offeredRelay = relay
        exchange &+= 1
        resumePendingRead()
        requestDone = !bodyFollows
        responseDone = false
        keepAlive = true
        let deadline = NIODeadline.now() + responseTimeout
        headDeadline = deadline
        if headTimer == nil || headTimerFiresAt > deadline { armHeadTimer(at: deadline, context: context) }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        if bodyFollows {
            context.flush()
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    /// Writes one chunk of a streamed request body.
    func writeBodyChunk(_ chunk: ByteBuffer, promise: EventLoopPromise<Void>) {
        guard let context, !isClosed else { promise.fail(UpstreamTransportError.closedEarly); return }
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(chunk))), promise: promise)
    }

    /// Ends a streamed request body.
    func finishRequest(promise: EventLoopPromise<Void>) {
        guard let context, !isClosed else { promise.fail(UpstreamTransportError.closedEarly); return }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
        requestDone = true
        releaseIfDone()
    }

    /// Gives up on the exchange (the request body failed): the connection cannot be reused.
    func abort(_ error: any Error) {
        fail(error)
    }

    private func armHeadTimer(at deadline: NIODeadline, context: ChannelHandlerContext) {
        headTimer?.cancel()
        headTimerFiresAt = deadline
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        headTimer = context.eventLoop.scheduleTask(deadline: deadline) { handler.value.headTimerFired() }
    }

    private func headTimerFired() {
        headTimer = nil
        guard let deadline = headDeadline, case .awaitingHead = state else { return }
        if deadline <= .now() {
            fail(UpstreamTransportError.responseTimeout)
        } else if let context {
            armHeadTimer(at: deadline, context: context)  // a later exchange's deadline
        }
    }

    private var isClosed: Bool { if case .closed = state { return true } else { return false } }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            // 1xx informational answers (100 Continue, 103 Early Hints) are not the answer.
            if head.status.code >= 100, head.status.code < 200, head.status.code != 101 { return }
            guard case .awaitingHead(let promise) = state else { return }
            headDeadline = nil
            keepAlive = head.isKeepAlive
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length <= UpstreamResponseStart.wholeLimit,
               head.headers.first(name: "content-type").map({ ASCIICase.hasPrefix($0, "text/event-stream") }) != true
            {
                state = .collecting(promise, head, context.channel.allocator.buffer(capacity: length))
                offeredRelay = nil
                return
            }
            if let relay = offeredRelay {
                offeredRelay = nil
                if relay.accepts(head) {
                    state = .relaying(relay)
                    relay.head(head, control: UpstreamRelayControl(handler: NIOLoopBound(self, eventLoop: context.eventLoop), exchange: exchange))
                    promise.succeed(UpstreamResponseStart(head: head, body: .relayed))
                    return
                }
            }
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let produced = UpstreamResponseBody.makeSequence(
                backPressureStrategy: .init(lowWatermark: 2, highWatermark: 16), finishOnDeinit: false,
                delegate: UpstreamBodyDelegate(handler: loopBound, eventLoop: context.eventLoop, exchange: exchange))
            state = .streaming(produced.source)
            promise.succeed(UpstreamResponseStart(head: head, body: .stream(produced.sequence)))
        case .body(var buffer):
            switch state {
            case .streaming(let source):
                if source.yield(buffer) == .stopProducing { backpressured = true }
            case .relaying(let relay):
                relay.body(buffer)
            case .collecting(let promise, let head, var whole):
                state = .idle  // drop the reference while appending (no copy of the buffer)
                whole.writeBuffer(&buffer)
                state = .collecting(promise, head, whole)
            default:
                return
            }
        case .end:
            switch state {
            case .streaming(let source):
                source.finish()
                // The body is complete: whatever the caller's side holds, this connection reads again.
                resumePendingRead()
            case .collecting(let promise, let head, let whole):
                state = .idle
                responseDone = true
                releaseIfDone()
                promise.succeed(UpstreamResponseStart(head: head, body: .whole(whole)))
                return
            case .relaying(let relay):
                state = .idle
                responseDone = true
                releaseIfDone()
                relay.end()
                resumePendingRead()
                return
            default:
                return
            }
            state = .idle
            responseDone = true
            releaseIfDone()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .relaying(let relay) = state { relay.flush() }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(UpstreamTransportError.closedEarly)
        state = .closed
        onClosed?()
        onClosed = nil
        onReusable = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset or a write on a closed socket is the connection going away (retried on a
        // fresh one when nothing was lost); bytes that are not HTTP are a broken upstream.
        let mapped: any Error
        if error is HTTPParserError {
            mapped = UpstreamTransportError.invalidResponse
        } else if error is IOError || error is ChannelError {
            mapped = UpstreamTransportError.closedEarly
        } else {
            mapped = error
        }
        fail(mapped)
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            // Silence inside a body is a timeout; an idle pooled connection just goes; the wait
            // for the head is the response timeout's business.
            switch state {
            case .idle: context.close(promise: nil)
            case .collecting, .streaming, .relaying: fail(UpstreamTransportError.idleTimeout)
            case .awaitingHead, .closed: break
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: Outbound

    func read(context: ChannelHandlerContext) {
        if backpressured { pendingRead = true } else { context.read() }
    }

    /// The relay's caller cannot take more for now.
    func pauseReading(exchange: Int) {
        guard exchange == self.exchange, case .relaying = state else { return }
        backpressured = true
    }

    /// The caller's side wants more of the body.
    func resumeReading(exchange: Int) {
        guard exchange == self.exchange else { return }
        resumePendingRead()
    }

    private func resumePendingRead() {
        backpressured = false
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    /// The caller stopped reading the body before its end: the connection cannot be reused.
    func bodyAbandoned(exchange: Int) {
        guard exchange == self.exchange else { return }
        if !responseDone { fail(UpstreamTransportError.closedEarly) }
    }

    // MARK: -

    private func releaseIfDone() {
        guard requestDone, responseDone, case .idle = state else { return }
        if keepAlive, let onReusable {
            onReusable()
        } else {
            context?.close(promise: nil)
        }
    }

    /// Fails whatever is in flight and closes the connection.
    private func fail(_ error: any Error) {
        offeredRelay = nil
        headDeadline = nil
        headTimer?.cancel()
        headTimer = nil
        switch state {
        case .awaitingHead(let promise), .collecting(let promise, _, _):
            state = .closed
            promise.fail(error)
            context?.close(promise: nil)
        case .streaming(let source):
            state = .closed
            source.finish(error)
            context?.close(promise: nil)
        case .relaying(let relay):
            state = .closed
            relay.fail(error)
            context?.close(promise: nil)
        case .idle:
            if !requestDone || !responseDone {
                state = .closed
                context?.close(promise: nil)
            }
        case .closed:
            break
        }
    }
}

/// Asks the handler for more body when the caller's side drained (hops to the event loop).
public struct UpstreamBodyDelegate: NIOAsyncSequenceProducerDelegate {
    let handler: NIOLoopBound<UpstreamExchangeHandler>
    let eventLoop: any EventLoop
    let exchange: Int

    public func produceMore() {
        eventLoop.execute { handler.value.resumeReading(exchange: exchange) }
    }

    public func didTerminate() {
        eventLoop.execute { handler.value.bodyAbandoned(exchange: exchange) }
    }
}
