import Foundation
import NIOCore
import NIOHTTP1

/// The caller's side of a connection, right after NIO's HTTP codec, whichever driver serves
/// the requests: it alone tracks where each request is (head read, body read, answered), and
/// keeps three rules that depend on it.
///
/// **Timeouts** (`gateway.timeouts`), so that a client that sends nothing, half a request head,
/// a body that stalls, or goes quiet after its answer does not keep a connection for good:
/// - `client_header`: a head must arrive whole within this, counted from its first byte (or
///   from the connection's start, for its first request); a later byte does not extend it.
/// - `client_body`: the longest silence while the gateway is *waiting* for more of a body
///   (when it stops reading — the upstream is slow to take the body, an answer is pending —
///   no clock runs against the caller).
/// - `keepalive`: the longest an idle connection (every answer sent) stays open.
/// While a request is being answered nothing is timed here (the upstream's `response` and
/// `idle` timeouts cover that; an SSE stream may last hours). One deadline, one scheduled task:
/// a keep-alive request moves the deadline; the task reschedules itself only when it fires
/// early — no timer is scheduled or cancelled per request.
///
/// **Refusals**: what NIO's parser refuses (a header section over its limit, conflicting or
/// invalid lengths, a malformed line) and a timeout with a request under way get the gateway's
/// JSON error (431 `headers_too_large`, 400 `bad_request`, 408 `request_timeout`) and
/// `Connection: close`, then the connection closes. Answers leave in request order: a refusal
/// waits for the answers owed to the complete requests before it (pipelining), so a caller
/// never reads a 400 as the answer to a request the upstream did serve. After a refusal,
/// nothing else is written. `CONNECT` is refused here too (405 `method_not_allowed`): the
/// gateway is not a forward proxy, and after a CONNECT head NIO's parser reads what follows as
/// a tunnel, so no driver could answer it with a framed response.
///
/// **Incomplete bodies**: a request whose body had not ended when the connection ended (a
/// parse error, a timeout, the caller leaving) is failed, never passed on as complete —
/// otherwise a driver would read the end of the stream as the end of the body and forward
/// what arrived with a length of its own.
///
/// ``Bytes`` (before the decoder) says when the first byte of a head arrives.
final class CallerConnection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    struct Limits: Sendable {
        var header: TimeAmount
        var body: TimeAmount
        var keepalive: TimeAmount
    }

    /// What a driver reading the body of a request sees when the connection ended before it.
    struct IncompleteRequestBody: Error {}

    private let limits: Limits
    /// Requests whose head arrived and whose answer has not ended (the one being read included).
    private var unanswered = 0
    /// A request's head arrived and its end has not.
    private var readingBody = false
    /// Bytes of a next request's head arrived; the head has not.
    private var partialHead = false
    /// A CONNECT was read: what follows it is dropped, never passed on (it is being refused).
    private var swallowing = false
    /// An answer's head is out and its end is not.
    private var answering = false
    /// A refusal waiting for the answers owed before it.
    private var pendingRefusal: GatewayError?
    /// A refusal was written: the connection is closing and nothing else goes out.
    private var refused = false
    /// When the connection is closed unless something moves it; nil: not timed now.
    private var deadline: NIODeadline?
    private var timer: Scheduled<Void>?
    private var timerAt: NIODeadline?
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
        if readingBody, !swallowing {
            readingBody = false
            context.fireErrorCaught(IncompleteRequestBody())  // before the end of the stream, which would read as the end of the body
        }
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
        guard !swallowing else { return }
        switch unwrapInboundIn(data) {
        case .head(let head) where head.method == .CONNECT:
            // Counted as the request being read, so that the refusal waits for the answers owed
            // before it; never passed on.
            partialHead = false
            readingBody = true
            unanswered += 1
            swallowing = true
            var refusal = GatewayError(code: "method_not_allowed", status: .methodNotAllowed, message: "CONNECT is not supported: the gateway is not a forward proxy")
            refusal.headers[.allow] = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
            refuse(refusal, context: context)
            return
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

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parse = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        // Not passed on: the refusal is this handler's; a request cut by it fails when the
        // connection ends (see channelInactive).
        refuse(Self.refusal(for: parse), context: context)
    }

    func read(context: ChannelHandlerContext) {
        // The gateway wants more of a body: from now the caller owes it bytes.
        if readingBody { set(.now() + limits.body) }
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if refused {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200:
            answering = true
        case .end:
            answering = false
            unanswered = max(0, unanswered - 1)
            guard let refusal = pendingRefusal else {
                context.write(data, promise: promise)
                if unanswered == 0, !readingBody { set(.now() + (partialHead ? limits.header : limits.keepalive)) }
                return
            }
            // The refused request is the one being read, unless it has had its answer already.
            let refusedUnanswered = readingBody && unanswered > 0
            guard unanswered - (refusedUnanswered ? 1 : 0) == 0 else {
                context.write(data, promise: promise)
                return
            }
            pendingRefusal = nil
            if readingBody, !refusedUnanswered {
                // It was answered (early, before its body ended): no second answer, just the close.
                refused = true
                let written = promise ?? context.eventLoop.makePromise()
                context.writeAndFlush(data, promise: written)
                written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            } else {
                context.write(data, promise: promise)
                answer(refusal, context: context)
            }
            return
        default:
            break
        }
        context.write(data, promise: promise)
    }

    // MARK: Refusals

    /// Answers `refusal` once the answers owed to the complete requests before it are out
    /// (the request being read, if any, is the refused one), then closes.
    private func refuse(_ refusal: GatewayError, context: ChannelHandlerContext) {
        guard !refused, pendingRefusal == nil else { return }
        let owed = unanswered - (readingBody ? 1 : 0)
        if owed > 0 || answering {
            pendingRefusal = refusal
        } else {
            answer(refusal, context: context)
        }
    }

    private func answer(_ refusal: GatewayError, context: ChannelHandlerContext) {
        deadline = nil
        refused = true
        refusal.answerAndClose(context: context)
    }

    static func refusal(for error: HTTPParserError) -> GatewayError {
        switch error {
        case .headerOverflow:
            return GatewayError(code: "headers_too_large", status: .requestHeaderFieldsTooLarge, message: "the request's header section is larger than the gateway accepts")
        case .invalidContentLength, .unexpectedContentLength:
            return GatewayError(code: "bad_request", status: .badRequest, message: "the request's Content-Length is invalid or conflicts with its framing")
        case .invalidChunkSize:
            return GatewayError(code: "bad_request", status: .badRequest, message: "the request's chunked body is malformed")
        default:
            return GatewayError(code: "bad_request", status: .badRequest, message: "the request is not valid HTTP/1.1")
        }
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
        guard readingBody || partialHead, !answering, !refused else {
            context.close(promise: nil)
            return
        }
        let message = readingBody ? "the request body did not arrive in time" : "the request head did not arrive in time"
        answer(GatewayError(code: "request_timeout", status: .requestTimeout, message: message), context: context)
    }

    /// Before NIO's HTTP decoder: tells ``CallerConnection`` when bytes arrive.
    final class Bytes: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        private let caller: CallerConnection

        init(_ caller: CallerConnection) { self.caller = caller }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            caller.bytesArrived()
            context.fireChannelRead(data)
        }
    }
}

extension GatewayError {
    /// Answers with this error (JSON, `Connection: close`) on a connection the HTTP exchange
    /// cannot go on with, and closes it once the answer is written. `context`: a handler's
    /// right after NIO's HTTP codec.
    func answerAndClose(context: ChannelHandlerContext) {
        let body = body()
        var headers = HTTPHeaders([
            ("Content-Type", "application/json"), ("Cache-Control", "no-store"), ("Connection", "close"), ("Content-Length", String(body.count)),
        ])
        for field in self.headers { headers.add(name: field.name.rawName, value: field.value) }  // e.g. a 405's Allow
        let head = HTTPResponseHead(version: .http1_1, status: .init(statusCode: Int(status.code)), headers: headers)
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
