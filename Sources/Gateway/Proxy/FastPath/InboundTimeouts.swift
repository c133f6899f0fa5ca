import NIOCore
import NIOHTTP1

/// The caller's side of a connection is timed (`gateway.timeouts`), so that a client that
/// sends nothing, half a request head, a body that stalls, or goes quiet after its answer
/// does not keep a connection (and its memory) for good:
///
/// - **client_header**: a request head must arrive whole within this, counted from its first
///   byte — or from the connection's start, for its first request; a later byte does not
///   extend it (a client dripping one byte at a time gets no more time).
/// - **client_body**: the longest silence while the gateway is waiting for more of a body.
///   Only while it is *waiting*: when the gateway itself stops reading (the upstream is slow
///   to take the body, or an answer is pending), no clock runs against the caller.
/// - **keepalive**: the longest an idle connection — every answer sent, no byte of a next
///   request — stays open.
///
/// While a request is being answered nothing is timed here (the upstream's `response` and
/// `idle` timeouts cover that; an SSE stream may last hours). On expiry, a request under way
/// with no answer started gets 408 `request_timeout` in the gateway's JSON shape and the
/// connection closes; otherwise the connection just closes.
///
/// Sits right after NIO's HTTP codec, so it sees every request and answer whichever driver
/// serves them; ``Bytes`` (before the decoder) tells it when the first byte of a head arrives.
/// One deadline, one scheduled task: a keep-alive request moves the deadline, and the task
/// reschedules itself only when it fires early — no timer is scheduled or cancelled per request.
final class InboundTimeouts: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    struct Limits: Sendable {
        var header: TimeAmount
        var body: TimeAmount
        var keepalive: TimeAmount
    }

    private let limits: Limits
    /// Requests whose head arrived and whose answer has not ended.
    private var unanswered = 0
    /// A request's head arrived and its end has not.
    private var readingBody = false
    /// Bytes of a next request's head arrived; the head has not.
    private var partialHead = false
    /// An answer's head is out and its end is not.
    private var answering = false
    /// When the connection is closed unless something moves it; nil: not timed now.
    private var deadline: NIODeadline?
    private var timer: Scheduled<Void>?
    private var timerAt: NIODeadline?
    private var expired = false
    private var context: ChannelHandlerContext?

    init(limits: Limits) {
        self.limits = limits
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // The first request's head, first byte included.
        if context.channel.isActive { set(.now() + limits.header) }
    }

    func channelActive(context: ChannelHandlerContext) {
        set(.now() + limits.header)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline = nil
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    /// Bytes came off the socket (told by ``Bytes``, before the decoder sees them).
    fileprivate func bytesArrived() {
        if readingBody {
            deadline = nil  // re-armed by the next read the gateway asks for
        } else if !partialHead {
            partialHead = true
            // A pipelined head waits for the answers owed first; its clock starts after them.
            set(unanswered == 0 ? .now() + limits.header : nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            partialHead = false
            readingBody = true
            unanswered += 1
            deadline = nil
        case .body:
            break
        case .end:
            readingBody = false
            deadline = nil
        }
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        // The gateway wants more of a body: from now the caller owes it bytes.
        if readingBody { set(.now() + limits.body) }
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if expired {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200:
            answering = true
        case .end:
            answering = false
            unanswered = max(0, unanswered - 1)
            if unanswered == 0, !readingBody {
                set(.now() + (partialHead ? limits.header : limits.keepalive))
            }
        default:
            break
        }
        context.write(data, promise: promise)
    }

    // MARK: The deadline

    private func set(_ new: NIODeadline?) {
        deadline = new
        guard let new, let context else { return }
        // The scheduled task fires at or before the deadline; a later deadline is seen when it fires.
        if let at = timerAt, at <= new { return }
        timer?.cancel()
        schedule(at: new, context: context)
    }

    private func schedule(at when: NIODeadline, context: ChannelHandlerContext) {
        timerAt = when
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: when) { [self] in
            timer = nil
            timerAt = nil
            guard let deadline, let context = self.context else { return }
            if deadline > .now() {
                schedule(at: deadline, context: context)
            } else {
                expire(context: context)
            }
        }
    }

    private func expire(context: ChannelHandlerContext) {
        deadline = nil
        let midRequest = readingBody || partialHead
        guard midRequest, !answering else {
            context.close(promise: nil)
            return
        }
        let refusal = GatewayError(
            code: "request_timeout", status: .requestTimeout,
            message: readingBody ? "the request body did not arrive in time" : "the request head did not arrive in time")
        expired = true
        refusal.answerAndClose(context: context)
    }

    /// Before NIO's HTTP decoder: tells ``InboundTimeouts`` when bytes arrive.
    final class Bytes: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        private let timeouts: InboundTimeouts

        init(_ timeouts: InboundTimeouts) { self.timeouts = timeouts }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            timeouts.bytesArrived()
            context.fireChannelRead(data)
        }
    }
}
