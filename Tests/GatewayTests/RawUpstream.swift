import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An upstream written on bare SwiftNIO, for the upstream-client tests that need control of the
/// socket: it counts TCP connections, writes raw bytes (malformed answers, cut bodies), closes,
/// half-closes or resets connections, holds answers behind a gate, and streams large bodies
/// with back-pressure. Not a script on ``ScriptedUpstream``: that one speaks well-formed HTTP
/// through NIO's server pipeline and cannot write bytes that are not HTTP, interim (1xx)
/// heads, a body cut short of its `Content-Length`, a reset, a half-close, a body paced by
/// the socket's writability, or refuse a connection at accept. What it does is chosen by the
/// last path segment of each request:
///
/// - `ok`: 200, `Content-Length: 2`, `ok` (keep-alive); `X-Upstream-Connection` tells which connection served it.
/// - `close`: like `ok` with `Connection: close`, then closes the socket.
/// - `eof-body`: 200 `Connection: close` without a length; the body ends when the socket closes.
/// - `halfclose`: like `ok` (keep-alive headers), then shuts its side down (FIN) while still reading.
/// - `gated`: like `ok`, but only once ``openGate()`` was called.
/// - `big?size=N&cl=0|1`: N bytes (chunked, or with `Content-Length` when `cl=1`), written as the socket drains.
/// - `endless`: a chunked body that never ends (until the connection closes).
/// - `manychunks?n=N`: head and N one-byte chunks (`0123456789…`), all in one small write (one read at the gateway).
/// - `upload`: answers `{"bytes":…,"sha256":…,"transfer_encoding":…,"content_length":…}` for the request body.
/// - `head`: 200 with `Content-Length: 1234`, and the 1234 bytes unless the method is HEAD; `head-big`: 1,000,000 bytes.
/// - `garbage`: bytes that are not HTTP, connection left open.
/// - `silent`: reads the request, never answers.
/// - `early-hints`: a `103 Early Hints` and a `100 Continue` head, then the `ok` answer.
/// - `stall`: a chunked head and one 1000-byte chunk, then nothing; `stall-cl?cl=N`: `Content-Length: N` and 1000 bytes (10 when N < 1000), then nothing.
/// - `late?ms=N`: like `ok`, after N milliseconds.
/// - `drop-second`, `reset-second`, `cut-second`: like `ok` on a connection's first request; on a
///   later one: close (FIN) / reset (RST) without answering, or send a head with
///   `Content-Length: 100` and 10 bytes, then close.
final class RawUpstream: Sendable {
    struct Seen: Sendable {
        /// 1-based number of the TCP connection (in accept order).
        var connection: Int
        /// 1-based number of the request on its connection.
        var indexOnConnection: Int
        var method: HTTPMethod
        var uri: String
        var headers: HTTPHeaders
        var bodyBytes: Int
    }

    struct Counters: Sendable {
        var accepted = 0
        var open = 0
        var maxOpen = 0
        /// Connections whose peer (the gateway) closed its side first.
        var closedByPeer = 0
        /// Request heads received (a request cut short is counted here, not in `seen`).
        var heads = 0
    }

    struct Gate {
        var isOpen = false
        var pending: [@Sendable () -> Void] = []
    }

    struct Sent: Sendable {
        var bytes: Int
        var sha256: String
    }

    let counters = Mutex(Counters())
    let seen = Mutex<[Seen]>([])
    let gate = Mutex(Gate())
    /// Size and SHA-256 of each finished `big` body, in order.
    let sent = Mutex<[Sent]>([])
    let closeOnAccept: Bool
    private let listener = Mutex<(any Channel)?>(nil)

    private init(closeOnAccept: Bool) {
        self.closeOnAccept = closeOnAccept
    }

    var port: Int { listener.withLock { $0?.localAddress?.port ?? 0 } }
    var baseURL: String { "http://127.0.0.1:\(port)" }

    var accepted: Int { counters.withLock { $0.accepted } }
    var open: Int { counters.withLock { $0.open } }
    var maxOpen: Int { counters.withLock { $0.maxOpen } }
    var closedByPeer: Int { counters.withLock { $0.closedByPeer } }
    var heads: Int { counters.withLock { $0.heads } }
    var requests: [Seen] { seen.withLock { $0 } }
    var pendingAtGate: Int { gate.withLock { $0.pending.count } }

    /// `closeOnAccept`: every connection is closed as soon as it is accepted.
    static func start(closeOnAccept: Bool = false) async throws -> RawUpstream {
        let upstream = RawUpstream(closeOnAccept: closeOnAccept)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
                    try channel.pipeline.syncOperations.addHandler(RawUpstreamHandler(upstream: upstream))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        upstream.listener.withLock { $0 = channel }
        return upstream
    }

    func stop() async {
        openGate()
        let channel = listener.withLock { $0 }
        try? await channel?.close()
    }

    /// Lets every held `gated` answer go, and the later ones through at once.
    func openGate() {
        let pending = gate.withLock { gate -> [@Sendable () -> Void] in
            gate.isOpen = true
            defer { gate.pending = [] }
            return gate.pending
        }
        for release in pending { release() }
    }

    fileprivate func connectionOpened() -> Int {
        counters.withLock { c in
            c.accepted += 1
            c.open += 1
            c.maxOpen = max(c.maxOpen, c.open)
            return c.accepted
        }
    }

    fileprivate func connectionClosed() {
        counters.withLock { $0.open -= 1 }
    }

    /// A 64 KiB block of random bytes; chunk k of a `big` body is this block with k in its first 8 bytes.
    static let block: ByteBuffer = {
        var generator = SystemRandomNumberGenerator()
        var buffer = ByteBuffer()
        buffer.reserveCapacity(64 * 1024)
        for _ in 0..<(64 * 1024 / 8) { buffer.writeInteger(generator.next() as UInt64) }
        return buffer
    }()

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}

/// One connection of ``RawUpstream``; lives on its channel's event loop.
private final class RawUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = ByteBuffer

    /// A body being written as the socket drains.
    private struct Outgoing {
        /// nil: endless.
        var remaining: Int?
        var chunked: Bool
        var index: UInt64 = 0
        var sent = 0
        var hasher = SHA256()
    }

    let upstream: RawUpstream
    private var connection = 0
    private var requestsOnConnection = 0
    private var head: HTTPRequestHead?
    private var bodyBytes = 0
    private var bodyHasher = SHA256()
    private var outgoing: Outgoing?
    private var closedByUs = false

    init(upstream: RawUpstream) {
        self.upstream = upstream
    }

    func channelActive(context: ChannelHandlerContext) {
        connection = upstream.connectionOpened()
        if upstream.closeOnAccept {
            closedByUs = true
            context.close(promise: nil)
            return
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        outgoing = nil
        // Closed without our doing (a FIN after our own half-close escalates to a full close here).
        if !closedByUs { countPeerClose() }
        upstream.connectionClosed()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event as? ChannelEvent == .some(.inputClosed) {
            if !closedByUs { countPeerClose() }
            closedByUs = true
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset from the peer (or a parse error): the peer's doing, counted in channelInactive.
        context.close(promise: nil)
    }

    private var peerCloseCounted = false

    private func countPeerClose() {
        guard !peerCloseCounted else { return }
        peerCloseCounted = true
        upstream.counters.withLock { $0.closedByPeer += 1 }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            upstream.counters.withLock { $0.heads += 1 }
            requestsOnConnection += 1
            bodyBytes = 0
            bodyHasher = SHA256()
        case .body(let buffer):
            bodyBytes += buffer.readableBytes
            buffer.withUnsafeReadableBytes { bodyHasher.update(bufferPointer: $0) }
        case .end:
            guard let head else { return }
            self.head = nil
            let seen = RawUpstream.Seen(
                connection: connection, indexOnConnection: requestsOnConnection, method: head.method, uri: head.uri, headers: head.headers,
                bodyBytes: bodyBytes)
            upstream.seen.withLock { $0.append(seen) }
            answer(head, context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { pump(context: context) }
        context.fireChannelWritabilityChanged()
    }

    // MARK: -

    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let (path, query) = Self.split(head.uri)
        let name = path.split(separator: "/").last.map(String.init) ?? ""
        let channel = context.channel
        let later = requestsOnConnection > 1
        switch name {
        case "ok":
            write(okResponse(), context: context)
        case "close":
            closedByUs = true
            context.writeAndFlush(wrapOutboundOut(okResponse(extra: "Connection: close\r\n"))).whenComplete { _ in channel.close(promise: nil) }
        case "eof-body":
            closedByUs = true
            let text = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nthis body ends when the connection closes"
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text))).whenComplete { _ in channel.close(promise: nil) }
        case "halfclose":
            closedByUs = false
            context.writeAndFlush(wrapOutboundOut(okResponse(extra: "Connection: keep-alive\r\nKeep-Alive: timeout=60\r\n"))).whenComplete { _ in
                channel.close(mode: .output, promise: nil)
            }
        case "gated":
            let response = okResponse()
            let admitted = upstream.gate.withLock { gate -> Bool in
                if gate.isOpen { return true }
                gate.pending.append { channel.writeAndFlush(response, promise: nil) }
                return false
            }
            if admitted { write(response, context: context) }
        case "big":
            let size = Int(query["size"] ?? "") ?? (8 << 20)
            let withLength = query["cl"] == "1"
            let framing = withLength ? "Content-Length: \(size)\r\n" : "Transfer-Encoding: chunked\r\n"
            context.write(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\(framing)\r\n")), promise: nil)
            outgoing = Outgoing(remaining: size, chunked: !withLength)
            pump(context: context)
        case "endless":
            context.write(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")), promise: nil)
            outgoing = Outgoing(remaining: nil, chunked: true)
            pump(context: context)
        case "manychunks":
            let n = Int(query["n"] ?? "") ?? 100
            var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in 0..<n {
                buffer.writeString("1\r\n\(i % 10)\r\n")
            }
            buffer.writeString("0\r\n\r\n")
            write(buffer, context: context)
        case "upload":
            let digest = RawUpstream.hex(bodyHasher.finalize())
            let json = """
                {"bytes":\(bodyBytes),"sha256":"\(digest)","transfer_encoding":"\(head.headers.first(name: "transfer-encoding") ?? "")","content_length":"\(head.headers.first(name: "content-length") ?? "")"}
                """
            write(response(json, type: "application/json"), context: context)
        case "head", "head-big":
            let length = name == "head" ? 1234 : 1_000_000
            var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: \(length)\r\nX-Head-Test: yes\r\n\r\n")
            if head.method != .HEAD { buffer.writeRepeatingByte(UInt8(ascii: "h"), count: length) }
            write(buffer, context: context)
        case "garbage":
            write(ByteBuffer(string: "SSH-2.0-OpenSSH_9.6\r\nthis is not an HTTP answer\r\n\r\n"), context: context)
        case "silent":
            break
        case "early-hints":
            let hints = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
            var buffer = ByteBuffer(string: hints)
            buffer.writeImmutableBuffer(okResponse())
            write(buffer, context: context)
        case "stall":
            var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n")
            buffer.writeRepeatingByte(UInt8(ascii: "s"), count: 1000)
            buffer.writeString("\r\n")
            write(buffer, context: context)
        case "stall-cl":
            let length = Int(query["cl"] ?? "") ?? 200_000
            var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: \(length)\r\n\r\n")
            buffer.writeRepeatingByte(UInt8(ascii: "s"), count: length < 1000 ? 10 : 1000)
            write(buffer, context: context)
        case "late":
            let ms = Int64(query["ms"] ?? "") ?? 1000
            let response = okResponse()
            context.eventLoop.scheduleTask(in: .milliseconds(ms)) { channel.writeAndFlush(response, promise: nil) }
        case "drop-second" where later:
            closedByUs = true
            context.close(promise: nil)
        case "reset-second" where later:
            closedByUs = true
            if let options = channel as? any SocketOptionProvider {
                options.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
        case "cut-second" where later:
            closedByUs = true
            var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n")
            buffer.writeRepeatingByte(UInt8(ascii: "c"), count: 10)
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
        case "drop-second", "reset-second", "cut-second":
            write(okResponse(), context: context)
        default:
            write(response("no such behaviour: \(name)", type: "text/plain", status: "404 Not Found"), context: context)
        }
    }

    /// Writes the current `big`/`endless` body while the socket takes it.
    private func pump(context: ChannelHandlerContext) {
        guard var out = outgoing else { return }
        while context.channel.isWritable {
            if let remaining = out.remaining, remaining == 0 {
                if out.chunked { context.write(wrapOutboundOut(ByteBuffer(string: "0\r\n\r\n")), promise: nil) }
                context.flush()
                outgoing = nil
                let record = RawUpstream.Sent(bytes: out.sent, sha256: RawUpstream.hex(out.hasher.finalize()))
                upstream.sent.withLock { $0.append(record) }
                return
            }
            let size = min(RawUpstream.block.readableBytes, out.remaining ?? Int.max)
            var chunk = RawUpstream.block.getSlice(at: RawUpstream.block.readerIndex, length: size)!
            if size >= 8 { chunk.setInteger(out.index, at: chunk.readerIndex) }
            chunk.withUnsafeReadableBytes { out.hasher.update(bufferPointer: $0) }
            if out.chunked { context.write(wrapOutboundOut(ByteBuffer(string: String(size, radix: 16) + "\r\n")), promise: nil) }
            context.write(wrapOutboundOut(chunk), promise: nil)
            if out.chunked { context.write(wrapOutboundOut(ByteBuffer(string: "\r\n")), promise: nil) }
            out.index += 1
            out.sent += size
            if let remaining = out.remaining { out.remaining = remaining - size }
        }
        outgoing = out
        context.flush()
    }

    private func write(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    private func okResponse(extra: String = "") -> ByteBuffer {
        ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nX-Upstream-Connection: \(connection)\r\n\(extra)\r\nok")
    }

    private func response(_ body: String, type: String, status: String = "200 OK") -> ByteBuffer {
        ByteBuffer(string: "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
    }

    private static func split(_ uri: String) -> (path: Substring, query: [String: String]) {
        guard let q = uri.firstIndex(of: "?") else { return (uri[...], [:]) }
        var query: [String: String] = [:]
        for pair in uri[uri.index(after: q)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            query[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return (uri[..<q], query)
    }
}

/// A loopback port held by a socket that is bound but not listening: connecting to it is
/// refused, and no other test can take the port while this lives.
final class ReservedPort: Sendable {
    let port: Int
    private let fd: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ReservedPortError.socket }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { close(fd); throw ReservedPortError.bind }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { close(fd); throw ReservedPortError.bind }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }

    enum ReservedPortError: Error { case socket, bind }
}

/// A loopback listener that never accepts, with a backlog of 0, filled up by connections made
/// here: the kernel then drops new SYNs, so a connection attempt hangs until its own timeout.
final class SaturatedListener: Sendable {
    let port: Int
    private let fd: Int32
    private let held: Mutex<[any Channel]>

    private init(fd: Int32, port: Int, held: [any Channel]) {
        self.fd = fd
        self.port = port
        self.held = Mutex(held)
    }

    /// nil when the accept queue could not be filled (a connect never hung).
    static func start() async throws -> SaturatedListener? {
        let reserved = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard reserved >= 0 else { throw ReservedPort.ReservedPortError.socket }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(reserved, $0, length) == 0 && listen(reserved, 0) == 0 && getsockname(reserved, $0, &length) == 0
            }
        }
        guard ok else { close(reserved); throw ReservedPort.ReservedPortError.bind }
        let port = Int(UInt16(bigEndian: address.sin_port))
        var held: [any Channel] = []
        for _ in 0..<8 {
            do {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(.milliseconds(300))
                    .connect(host: "127.0.0.1", port: port).get()
                held.append(channel)
            } catch {
                return SaturatedListener(fd: reserved, port: port, held: held)
            }
        }
        for channel in held { try? await channel.close() }
        close(reserved)
        return nil
    }

    func stop() async {
        let channels = held.withLock { held in
            defer { held = [] }
            return held
        }
        for channel in channels { try? await channel.close() }
    }

    deinit { close(fd) }
}

/// A bare TCP client: sends `request`, reads until `atLeast` bytes arrived (or the peer closed),
/// then hangs up. Returns how many bytes it read.
enum HangingUpClient {
    static func readThenHangUp(port: Int, request: String, atLeast: Int) async throws -> Int {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let enough = loop.makePromise(of: Int.self)
        let channel = try await ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(CountingHandler(atLeast: atLeast, enough: enough))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: request))
        let read = try await enough.futureResult.get()
        try? await channel.close()
        return read
    }

    private final class CountingHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let atLeast: Int
        let enough: EventLoopPromise<Int>
        var count = 0
        var done = false

        init(atLeast: Int, enough: EventLoopPromise<Int>) {
            self.atLeast = atLeast
            self.enough = enough
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            count += unwrapInboundIn(data).readableBytes
            if count >= atLeast, !done {
                done = true
                enough.succeed(count)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            if !done {
                done = true
                enough.succeed(count)
            }
            context.fireChannelInactive()
        }
    }
}
