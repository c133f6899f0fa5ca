import AsyncHTTPClient
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import Tracing
import Upstream

/// Sits in each accepted connection's pipeline between NIO's HTTP/1 codec and Hummingbird
/// (``GatewayHTTP1Channel``): takes
/// the requests ``ProxyFastPath`` accepts and answers them on the event loop; passes every
/// other request up to Hummingbird untouched.
///
/// Answers leave in request order: while a request handed up is unanswered, later requests
/// are handed up too; while one of its own is unanswered, later parts (pipelining) wait here
/// and the socket is not read further.
final class ProxyFastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        /// Reading the body of a request this handler took.
        case collecting(ProxyFastPath.Request)
        /// Reading the body of a `POST /mcp` (its body says where it goes).
        case collectingAggregate(ProxyFastPath.AggregateCall)
        /// Its answer is on the way.
        case answering
    }

    private let path: ProxyFastPath
    private var state: State = .idle
    /// Requests handed to Hummingbird whose answers have not ended.
    private var handedUp = 0
    /// Parts that arrived while this handler's answer was pending.
    private var waiting = CircularBuffer<HTTPServerRequestPart>()
    private var readPending = false
    private var quiescePending = false
    /// The client half-closed while this handler's answer was pending: Hummingbird hears of
    /// it (and ends the connection) once that answer is out.
    private var inputClosedPending = false
    /// Parts were handed up outside a socket read: Hummingbird's async channel needs a
    /// `channelReadComplete` to deliver them.
    private var handedUpOutsideRead = false
    /// A decoding error that arrived while this handler's answer was pending: Hummingbird
    /// answers it (400, close) once that answer is out, not in the middle of it.
    private var errorPending: (any Error)?
    /// A streamed answer being relayed (see ``FastPathRelay``).
    private var relaying: Relaying?
    private var context: ChannelHandlerContext?

    private struct Relaying {
        let request: ProxyFastPath.Request
        let status: Int
        let control: UpstreamRelayControl
        var bytes = 0
        /// Upstream reads are held until the caller's socket drains.
        var paused = false
    }

    init(path: ProxyFastPath) {
        self.path = path
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .answering = state {
            waiting.append(part)
            return
        }
        process(part, context: context)
    }

    private func process(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch state {
        case .idle:
            if case .head(let head) = part {
                if handedUp == 0, !quiescePending {
                    // `/mcp` itself is the endpoint's (no connection route to parse first).
                    if head.uri == "/mcp", !path.proxy.tracing {  // (traced: the endpoint's span is made on the async path)
                        if let call = path.takeAggregate(head) {
                            state = .collectingAggregate(call)
                            return
                        }
                    } else if let request = path.take(head) {
                        state = .collecting(request)
                        return
                    }
                }
                handedUp += 1
            }
            // A head handed up, or the body of a request handed up.
            context.fireChannelRead(wrapInboundOut(part))
            handedUpOutsideRead = true
        case .collecting(let request):
            guard let ended = Self.collect(part, into: &request.body, context: context), ended else { return }
            state = .answering
            // Traced: one server span for a call this driver answers (its steps do no I/O); the
            // async driver adds the children where there is work (verification, exchanges, replays).
            if path.proxy.tracing { CallTracing.start(request, headers: request.head.headers) }
            if request.caller == nil {
                verifyThenForward(request, context: context)
            } else {
                forward(request, context: context)
            }
        case .collectingAggregate(let call):
            guard let ended = Self.collect(part, into: &call.body, context: context), ended else { return }
            state = .answering
            if let request = path.routeAggregate(call) {
                forward(request, context: context)
            } else {
                handOver(call)
            }
        case .answering:
            waiting.append(part)
        }
    }

    /// A part of a request this handler reads whole: true at its end, false for a body part,
    /// nil for a head (the decoder ends a request before the next head; never reached).
    private static func collect(_ part: HTTPServerRequestPart, into body: inout ByteBuffer?, context: ChannelHandlerContext) -> Bool? {
        switch part {
        case .head:
            context.fireErrorCaught(ChannelError.inappropriateOperationForState)
            return nil
        case .body(var chunk):
            if body == nil { body = chunk } else { body!.writeBuffer(&chunk) }
            return false
        case .end:
            return true
        }
    }

    /// A first call: the token is verified (shared with every request carrying it), then the
    /// request goes on here if its credential needs no plugin call, else to the async path.
    private func verifyThenForward(_ request: ProxyFastPath.Request, context: ChannelHandlerContext) {
        let verifying = request.span.map { startSpan("authenticate", context: $0.context) }
        request.authenticator.authenticate(request.authorization, on: context.eventLoop)
            .assumeIsolated()
            .whenComplete { result in
                verifying?.end()
                guard let context = self.context, context.channel.isActive else { return }
                switch result {
                case .success(let caller):
                    request.caller = caller
                    if let credential = CredentialResolver.cached(for: request.connection, caller: caller) {
                        request.credential = credential
                        self.forward(request, context: context)
                    } else {
                        self.handOver(request, prefetched: nil)
                    }
                case .failure(let error):
                    let refusal = error as? GatewayError ?? .internalError(request.connection.name)
                    self.path.proxy.recorder.log(request, status: Int(refusal.status.code), error: refusal.code)
                    self.respondAsync(refusal.response())
                }
            }
    }

    private func forward(_ request: ProxyFastPath.Request, context: ChannelHandlerContext) {
        // The pipeline's governance steps: a refusal, or a tool list to filter, is the async
        // driver's to word (it asks ``Governance`` again; the rate limits are counted once).
        if let caller = request.caller {
            guard case .pass(nil) = Governance.judge(request, caller: caller, body: request.body, unreadBody: false) else {
                handOver(request, prefetched: nil)
                return
            }
            if path.proxy.audit != nil, request.target.prefix == .mcp { request.auditBody = request.body }
        }
        if request.span != nil {
            CallTracing.describe(request, mcpBody: request.target.prefix == .mcp ? request.body : nil)
            request.spanAttributes.append(("switchboard.cache", .string("hit")))
        }
        let loop = context.eventLoop
        let rule = path.answerRule(for: request)
        let relay = FastPathRelay(handler: NIOLoopBound(self, eventLoop: loop), request: NIOLoopBound(request, eventLoop: loop), rule: rule)
        path.proxy.upstreamClient.start(path.upstreamRequest(for: request), timeout: request.connection.responseTimeout, relay: relay, on: loop)
            .hop(to: loop)
            .assumeIsolated()
            .whenComplete { result in
                self.answered(request, rule: rule, result)
            }
    }

    private func answered(_ request: ProxyFastPath.Request, rule: ProxyFastPath.AnswerRule, _ result: Result<UpstreamResponseStart, any Error>) {
        guard let context, context.channel.isActive else {
            // The caller left; a streamed answer's body is dropped with `result` (the upstream
            // connection then closes), a whole one was read already.
            return
        }
        switch result {
        case .failure(let error):
            let failure = path.failure(request, error: error)
            if let (call, _) = request.aggregate {
                handOver(call)  // the endpoint words it (a tool error)
                return
            }
            respondAsync(failure.response())
        case .success(let start):
            if case .relayed = start.body { return }  // the relay writes it (below)
            guard case .whole(let body) = start.body, !rule.needsAsyncPath(start.head, body: body) else {
                handOver(request, prefetched: start.clientResponse)
                return
            }
            let head = path.answerHead(request, head: start.head, bodyLength: body.readableBytes)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            if body.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            finished()
        }
    }

    // MARK: Relayed answers (from ``FastPathRelay``, on the event loop)

    func relayHead(_ request: ProxyFastPath.Request, _ head: HTTPResponseHead, control: UpstreamRelayControl) {
        guard let context, context.channel.isActive else {
            control.abandon()
            return
        }
        relaying = Relaying(request: request, status: Int(head.status.code), control: control)
        context.write(wrapOutboundOut(.head(path.relayedHead(request, head: head))), promise: nil)
    }

    func relayBody(_ chunk: ByteBuffer) {
        guard let context, relaying != nil else { return }
        relaying!.bytes += chunk.readableBytes
        context.write(wrapOutboundOut(.body(.byteBuffer(chunk))), promise: nil)
    }

    /// After each upstream read: what it brought goes out now (an event is not held back),
    /// and a caller that cannot keep up holds the upstream's reads.
    func relayFlush() {
        guard let context, relaying != nil else { return }
        context.flush()
        // The flush may have ended the connection (and the relay with it).
        if relaying?.paused == false, !context.channel.isWritable {
            relaying!.paused = true
            relaying!.control.pause()
        }
    }

    func relayEnd() {
        guard let context, let relay = relaying else { return }
        relaying = nil
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        logRelayed(relay)
        finished()
    }

    /// The upstream failed mid-answer: the caller's connection is closed (its answer is cut
    /// short, and a cut-off body must not look complete).
    func relayFailed() {
        guard let relay = relaying else { return }
        relaying = nil
        logRelayed(relay, error: "stream_interrupted")
        finished(failed: true)
    }

    private func logRelayed(_ relay: Relaying, error: String? = nil) {
        path.proxy.recorder.log(relay.request, status: relay.status, bytes: relay.bytes, error: error)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if relaying?.paused == true, context.channel.isWritable {
            relaying!.paused = false
            relaying!.control.resume()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let relay = relaying {
            // The caller left mid-answer: the rest is not read, the upstream connection closes.
            relaying = nil
            relay.control.abandon()
            logRelayed(relay, error: "stream_interrupted")
        }
        context.fireChannelInactive()
    }

    /// The async path takes over, with the answer already received (or, for a first call
    /// whose credential needs the plugin, from the start).
    private func handOver(_ request: ProxyFastPath.Request, prefetched: HTTPClientResponse?) {
        if let (call, _) = request.aggregate {
            // Not the direct pipeline's answer: the endpoint's (a refresh or a step-up replays
            // the call there, a lost upstream session is opened again, a refusal is a tool error).
            handOver(call)
            return
        }
        let proxy = path.proxy
        let exchange: ProxyExchange = request
        exchange.driver = .handOver
        let headers = request.head.headers
        let body = request.body
        let writer = ChannelResponseWriter(handler: NIOLoopBound(self, eventLoop: context!.eventLoop))
        Task {
            let response = await proxy.takeOver(exchange, headers: headers, body: body, prefetched: prefetched)
            await writer.send(response)
        }
    }

    /// A `POST /mcp` this driver read whole goes to the endpoint, and its answer back out here.
    private func handOver(_ call: ProxyFastPath.AggregateCall) {
        let aggregate = path.aggregate
        let writer = ChannelResponseWriter(handler: NIOLoopBound(self, eventLoop: context!.eventLoop))
        Task {
            let response = await aggregate.handOver(call)
            await writer.send(response)
        }
    }

    /// Sends a response built by the async machinery (gateway errors).
    private func respondAsync(_ response: Response) {
        guard let context else { return }
        let writer = ChannelResponseWriter(handler: NIOLoopBound(self, eventLoop: context.eventLoop))
        Task { await writer.send(response) }
    }

    /// Writes one response part (from ``ChannelResponseWriter``, on the event loop); nil when
    /// the handler is gone.
    func write(_ part: HTTPServerResponsePart) -> EventLoopFuture<Void>? {
        guard let context else { return nil }
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(part), promise: promise)
        return promise.futureResult
    }

    /// This handler's answer ended (or failed: the connection is closed then).
    func finished(failed: Bool = false) {
        guard let context else { return }
        if failed {
            context.close(promise: nil)
            return
        }
        state = .idle
        if quiescePending, handedUp == 0 {
            // Graceful shutdown waited for this answer; Hummingbird closes the idle connection.
            quiescePending = false
            waiting.removeAll()
            context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            return
        }
        handedUpOutsideRead = false
        while !waiting.isEmpty, !isAnswering {
            process(waiting.removeFirst(), context: context)
        }
        if handedUpOutsideRead {
            handedUpOutsideRead = false
            context.fireChannelReadComplete()
        }
        guard !isAnswering else { return }
        if let error = errorPending {
            errorPending = nil
            context.fireErrorCaught(error)
        }
        if inputClosedPending {
            inputClosedPending = false
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        }
        if readPending {
            readPending = false
            context.read()
        }
    }

    private var isAnswering: Bool {
        if case .answering = state { return true }
        return false
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        handedUpOutsideRead = false
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch state {
        case .idle:
            context.fireErrorCaught(error)
        case .collecting, .collectingAggregate:
            // The request being read is broken: nothing was sent upstream yet.
            state = .idle
            context.fireErrorCaught(error)
        case .answering:
            if errorPending == nil { errorPending = error }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed, isAnswering || !waiting.isEmpty {
            inputClosedPending = true
            return
        }
        if event is ChannelShouldQuiesceEvent {
            if case .idle = state {
                context.fireUserInboundEventTriggered(event)
            } else {
                quiescePending = true
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { handedUp = max(0, handedUp - 1) }
        context.write(data, promise: promise)
    }

    func read(context: ChannelHandlerContext) {
        // Reads go on while an answer is pending (holding them costs two epoll changes per
        // request); only a client that pipelines, with parts already waiting, is held back.
        if !waiting.isEmpty {
            readPending = true
            return
        }
        context.read()
    }
}
