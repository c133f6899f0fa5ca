import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Keep-alive HTTP/1.1 connections to plain-HTTP upstreams, per host and port. A request
/// takes an idle connection or opens one (no cap on connections in use, like nginx); up to
/// `maxIdlePerOrigin` finished ones are kept for reuse, the rest are closed.
final class HTTP1ConnectionPool: Sendable {
    struct Key: Hashable, Sendable {
        var host: String
        var port: Int
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

    private let idle = Mutex<[Key: [Connection]]>([:])
    private let group: any EventLoopGroup
    let maxIdlePerOrigin: Int
    let connectTimeout: TimeAmount
    let idleTimeout: TimeAmount

    init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, maxIdlePerOrigin: Int, connectTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.group = group
        self.maxIdlePerOrigin = maxIdlePerOrigin
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }

    /// An idle connection to `key`, or a new one; `reused` tells which.
    func acquire(_ key: Key) async throws -> (Connection, reused: Bool) {
        while let candidate = idle.withLock({ $0[key]?.popLast() }) {
            if candidate.channel.isActive { return (candidate, true) }
        }
        return (try await connect(key), false)
    }

    private func connect(_ key: Key) async throws -> Connection {
        let idleTimeout = self.idleTimeout
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idleTimeout))
                        try channel.pipeline.syncOperations.addHandler(UpstreamExchangeHandler())
                    }
                }
                .connect(host: key.host, port: key.port).get()
        } catch let error as ChannelError {
            if case .connectTimeout = error { throw UpstreamTransportError.connectTimeout }
            throw UpstreamTransportError.connectFailed
        } catch {
            throw UpstreamTransportError.connectFailed
        }
        let handler = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: UpstreamExchangeHandler.self), eventLoop: channel.eventLoop)
        }.get()
        let connection = Connection(channel: channel, handler: handler)
        try await channel.eventLoop.submit {
            handler.value.onReusable = { [weak self] in self?.release(connection, key: key) }
            handler.value.onClosed = { [weak self] in self?.forget(connection, key: key) }
        }.get()
        return connection
    }

    /// A finished exchange's connection: kept for the next request, or closed when enough are kept.
    private func release(_ connection: Connection, key: Key) {
        let kept = idle.withLock { idle -> Bool in
            var list = idle[key, default: []]
            guard list.count < maxIdlePerOrigin else { return false }
            list.append(connection)
            idle[key] = list
            return true
        }
        if !kept { connection.channel.close(promise: nil) }
    }

    private func forget(_ connection: Connection, key: Key) {
        idle.withLock { idle in idle[key]?.removeAll { $0 === connection } }
    }

    /// Closes every idle connection (at shutdown).
    func shutdown() async {
        let all = idle.withLock { idle -> [Connection] in
            defer { idle = [:] }
            return idle.values.flatMap { $0 }
        }
        for connection in all { try? await connection.channel.close() }
    }
}
