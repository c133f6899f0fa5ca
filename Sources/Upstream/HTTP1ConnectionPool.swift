public import NIOCore
import NIOHTTP1
public import NIOPosix
import Synchronization

/// Keep-alive HTTP/1.1 connections to plain-HTTP upstreams, per host and port. A request
/// takes an idle connection, or opens one while fewer than `maxPerOrigin` are open, or waits
/// (first come, first served) for one to be handed back: under a burst the upstream sees a
/// steady set of connections instead of a connect/close storm.
public final class HTTP1ConnectionPool: Sendable {
    public struct Key: Hashable, Sendable {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// One connection and its exchange handler (touched only on the channel's event loop).
    final class Connection: Sendable {
        let channel: any Channel
        let handler: NIOLoopBound<UpstreamExchangeHandler>

        init(channel: any Channel, handler: NIOLoopBound<UpstreamExchangeHandler>) {
            self.channel = channel
            self.handler = handler
        }
    }

    /// A waiter's promise: nil to open a new connection (a slot was freed), or the connection
    /// to use.
    private typealias Waiter = (id: UInt64, promise: EventLoopPromise<Connection?>)

    private struct Origin {
        var idle: [Connection] = []
        var open = 0
        var waiters: [Waiter] = []
    }

    private struct State {
        var origins: [Key: Origin] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())
    public let group: any EventLoopGroup
    public let maxPerOrigin: Int
    public let connectTimeout: TimeAmount
    public let idleTimeout: TimeAmount

    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, maxPerOrigin: Int, connectTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.group = group
        self.maxPerOrigin = max(1, maxPerOrigin)
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }

    private enum Next {
        case use(Connection)
        case connect
        case wait(UInt64)
    }

    /// An idle connection to `key`, a new one, or the next one handed back before `deadline`
    /// (else ``UpstreamTransportError/responseTimeout``); `reused` tells whether it served an
    /// earlier request. The task's cancellation ends its wait. (The event-loop form below does
    /// the work; this one only adds the cancellation.)
    func acquire(_ key: Key, deadline: ContinuousClock.Instant) async throws -> (Connection, reused: Bool) {
        enum Wait { case none, waiting(UInt64), cancelled }
        let wait = Mutex(Wait.none)
        let remaining = deadline - ContinuousClock.now
        let nioDeadline = NIODeadline.now() + .nanoseconds(max(remaining, .zero).nanoseconds)
        return try await withTaskCancellationHandler {
            try await acquire(key, deadline: nioDeadline, on: group.next()) { id in
                let cancelled = wait.withLock { w -> Bool in
                    if case .cancelled = w { return true }
                    w = .waiting(id)
                    return false
                }
                if cancelled { self.abandonWait(id, key: key, with: CancellationError()) }
            }.get()
        } onCancel: {
            let id = wait.withLock { w -> UInt64? in
                if case .waiting(let id) = w { return id }
                w = .cancelled
                return nil
            }
            if let id { abandonWait(id, key: key, with: CancellationError()) }
        }
    }

    /// Connections open (idle ones included), idle, and calls waiting for one, over every origin
    /// (the gateway's `/metrics`).
    public func usage() -> (open: Int, idle: Int, waiting: Int) {
        state.withLock { state in
            state.origins.values.reduce(into: (open: 0, idle: 0, waiting: 0)) { sum, origin in
                sum.open += origin.open
                sum.idle += origin.idle.count
                sum.waiting += origin.waiters.count
            }
        }
    }

    /// An idle connection on `loop`, if there is one (no future, no wait: the common case of
    /// the event-loop path).
    func takeIdle(_ key: Key, on loop: any EventLoop) -> Connection? {
        state.withLock { state -> Connection? in
            guard state.origins[key]?.idle.isEmpty == false else { return nil }
            return Self.takeIdle(from: &state.origins[key]!, on: loop)  // mutated in place
        }
    }

    /// An idle connection on `loop` (live ones only; dead ones are dropped on the way).
    private static func takeIdle(from origin: inout Origin, on loop: any EventLoop) -> Connection? {
        while let index = origin.idle.lastIndex(where: { $0.channel.eventLoop === loop }) {
            let candidate = origin.idle.remove(at: index)
            if candidate.channel.isActive { return candidate }
        }
        return nil
    }

    /// What a request gets without waiting: an idle connection (on `loop` first, so the whole
    /// exchange runs on one thread), else a slot for a new one while the cap allows; nil: wait.
    private func claim(_ origin: inout Origin, preferring loop: (any EventLoop)?) -> Next? {
        if let loop, let same = Self.takeIdle(from: &origin, on: loop) { return .use(same) }
        while let candidate = origin.idle.popLast() {
            if candidate.channel.isActive { return .use(candidate) }
        }
        if origin.open < maxPerOrigin {
            origin.open += 1
            return .connect
        }
        return nil
    }

    /// ``acquire(_:deadline:)`` without a task: for the proxy's event-loop path. The future
    /// completes on `loop`; a new connection is opened on `loop`. `onWait`: told the waiter's
    /// id when the request has to wait (so a cancelled task can end its wait).
    func acquire(
        _ key: Key, deadline: NIODeadline, on loop: any EventLoop, onWait: (@Sendable (UInt64) -> Void)? = nil
    ) -> EventLoopFuture<(Connection, reused: Bool)> {
        var promise: EventLoopPromise<Connection?>?
        let next = state.withLock { state -> Next in
            var origin = state.origins.removeValue(forKey: key) ?? Origin()  // uniquely held: mutated in place
            defer { state.origins[key] = origin }
            if let next = claim(&origin, preferring: loop) { return next }
            state.nextWaiter += 1
            let handOver = loop.makePromise(of: Connection?.self)
            origin.waiters.append((state.nextWaiter, handOver))
            promise = handOver
            return .wait(state.nextWaiter)
        }
        switch next {
        case .use(let connection):
            return loop.makeSucceededFuture((connection, true))
        case .connect:
            return connectOnLoop(key, loop: loop)
        case .wait(let id):
            guard let promise else { preconditionFailure("a waiter without its promise") }
            // A timer on the event loop (cheap), not a task per waiter.
            let timer = loop.scheduleTask(deadline: deadline) { [weak self] in
                self?.abandonWait(id, key: key, with: UpstreamTransportError.responseTimeout)
            }
            onWait?(id)
            return promise.futureResult.flatMap { [self] handed in
                timer.cancel()
                if let handed {
                    if handed.channel.isActive { return loop.makeSucceededFuture((handed, true)) }
                    return self.acquire(key, deadline: deadline, on: loop, onWait: onWait)
                }
                return self.connectOnLoop(key, loop: loop)
            }.flatMapErrorThrowing { error in
                timer.cancel()
                throw error
            }
        }
    }

    private func connectOnLoop(_ key: Key, loop: any EventLoop) -> EventLoopFuture<(Connection, reused: Bool)> {
        connect(key, on: loop).map { ($0, false) }.flatMapErrorThrowing { [self] error in
            self.slotFreed(key)
            throw error
        }
    }

    /// Opens a connection on `loop` (its slot is already counted); fails with an
    /// ``UpstreamTransportError``. A connection that closed before its callbacks were set
    /// frees its slot here.
    private func connect(_ key: Key, on loop: any EventLoop) -> EventLoopFuture<Connection> {
        let idleTimeout = self.idleTimeout
        return ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // No outbound header validation: the headers were parsed from a valid request
                    // (or are HTTPTypes fields, validated when made).
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idleTimeout))
                    try channel.pipeline.syncOperations.addHandler(UpstreamExchangeHandler())
                }
            }
            .connect(host: key.host, port: key.port)
            .flatMapErrorThrowing { error -> any Channel in
                if let error = error as? ChannelError, case .connectTimeout = error { throw UpstreamTransportError.connectTimeout }
                throw UpstreamTransportError.connectFailed
            }
            .flatMapThrowing { [self] channel -> Connection in
                // On the channel's event loop (the bootstrap's loop is `loop`).
                let handler = NIOLoopBound(try channel.pipeline.syncOperations.handler(type: UpstreamExchangeHandler.self), eventLoop: channel.eventLoop)
                let connection = Connection(channel: channel, handler: handler)
                handler.value.onReusable = { [weak self] in self?.release(connection, key: key) }
                handler.value.onClosed = { [weak self] in self?.forget(connection, key: key) }
                // Closed before the callbacks were in place: nothing will report it.
                // (The caller frees the slot when this throws.)
                guard channel.isActive else {
                    handler.value.onClosed = nil
                    handler.value.onReusable = nil
                    throw UpstreamTransportError.connectFailed
                }
                return connection
            }
    }

    /// Ends a wait (cancelled, timed out) unless the waiter was already handed a connection.
    private func abandonWait(_ id: UInt64, key: Key, with error: any Error) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.origins[key]?.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.origins[key]!.waiters.remove(at: index)
        }
        waiter?.promise.fail(error)
    }

    /// A finished exchange's connection: to the first waiter, or kept for the next request.
    private func release(_ connection: Connection, key: Key) {
        let waiter = state.withLock { state -> Waiter? in
            if state.origins[key]?.waiters.isEmpty == false { return state.origins[key]!.waiters.removeFirst() }
            state.origins[key, default: Origin()].idle.append(connection)
            return nil
        }
        waiter?.promise.succeed(connection)
    }

    /// A connection closed: its slot goes to the first waiter, who opens a new one.
    private func forget(_ connection: Connection, key: Key) {
        state.withLock { state in state.origins[key]?.idle.removeAll { $0 === connection } }
        slotFreed(key)
    }

    private func slotFreed(_ key: Key) {
        let waiter = state.withLock { state -> Waiter? in
            guard var origin = state.origins.removeValue(forKey: key) else { return nil }
            defer { state.origins[key] = origin }
            if !origin.waiters.isEmpty { return origin.waiters.removeFirst() }  // the slot passes on: `open` stays
            origin.open = max(0, origin.open - 1)
            return nil
        }
        waiter?.promise.succeed(nil)
    }

    /// Closes every idle connection (at shutdown).
    public func shutdown() async {
        let all = state.withLock { state -> [Connection] in
            let idle = state.origins.values.flatMap(\.idle)
            for key in state.origins.keys { state.origins[key]!.idle = [] }
            return idle
        }
        for connection in all { try? await connection.channel.close() }
    }
}
