import Logging
import NIOCore
import Synchronization

/// `gateway.limits.max_inbound_connections`: callers' connections open at once. One more is
/// closed as soon as it is accepted — before a byte is read, so an overload costs a socket's
/// accept and close, not a request's work. (Closing, not answering 503: the caller has sent no
/// request yet, and an HTTP client may take an unasked-for answer as the next request's.)
final class InboundConnections: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)
    private let refused = Atomic<Int>(0)
    /// When a refusal was last logged (uptime ns): at most one warning per 10 s.
    private let lastWarning = Atomic<UInt64>(0)
    private let logger: Logger
    private let metrics: GatewayMetrics?

    init(limit: Int, logger: Logger, metrics: GatewayMetrics?) {
        self.limit = limit
        self.logger = logger
        self.metrics = metrics
    }

    var count: Int { open.load(ordering: .relaxed) }
    var refusedCount: Int { refused.load(ordering: .relaxed) }

    /// Counts `channel` in until it closes; false when the limit is reached (the caller closes it).
    func admit(_ channel: any Channel) -> Bool {
        let now = open.add(1, ordering: .relaxed).newValue
        metrics?.inboundOpen.record(now)
        channel.closeFuture.whenComplete { _ in self.metrics?.inboundOpen.record(self.open.subtract(1, ordering: .relaxed).newValue) }
        guard now > limit else { return true }
        let total = refused.add(1, ordering: .relaxed).newValue
        metrics?.inboundRefused.increment()
        let t = NIODeadline.now().uptimeNanoseconds
        let last = lastWarning.load(ordering: .relaxed)
        if t - min(t, last) > 10_000_000_000 || last == 0, lastWarning.compareExchange(expected: last, desired: t, ordering: .relaxed).exchanged {
            logger.warning("inbound connection limit reached: closing new connections",
                           metadata: ["limit": "\(limit)", "refused_total": "\(total)"])
        }
        return false
    }

    /// Closes its connection as soon as it is active, before anything is read.
    final class Refusal: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer

        func handlerAdded(context: ChannelHandlerContext) {
            if context.channel.isActive { context.close(promise: nil) }
        }

        func channelActive(context: ChannelHandlerContext) {
            context.close(promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}  // nothing is read from a refused caller
    }
}
