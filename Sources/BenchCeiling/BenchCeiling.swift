import AsyncHTTPClient
import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOPosix

/// `bench-ceiling`: the server libraries alone, for bench/run. It answers every request with
/// the same bytes from memory — no routing table, no token, no upstream — so wrk against it
/// measures what a Hummingbird (or a bare SwiftNIO HTTP/1.1) server costs on this machine:
/// the ceiling any gateway built on it can reach. `hummingbird-ahc` is the plainest proxy on
/// the gateway's own two libraries: each request is sent on to `--upstream` with
/// AsyncHTTPClient and its answer returned, with no routing, token or header work.
/// `nio-proxy` is the plainest proxy SwiftNIO allows: each caller's connection gets its own
/// upstream connection on the same event loop, and NIO's request and response parts are
/// passed across as they are (what nginx does for `proxy_pass`, without even a pool): the
/// least CPU any gateway on SwiftNIO can spend per proxied request.
///
///     bench-ceiling --kind hummingbird|nio|hummingbird-ahc|nio-proxy --port P --body-file F [--upstream URL]
@main
struct BenchCeiling {
    static func main() async throws {
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        var kind = "hummingbird", port = 0, bodyFile = "", contentType = "application/json", upstream = ""
        while let flag = arguments.next() {
            switch flag {
            case "--kind": kind = arguments.next() ?? kind
            case "--port": port = Int(arguments.next() ?? "") ?? port
            case "--body-file": bodyFile = arguments.next() ?? ""
            case "--content-type": contentType = arguments.next() ?? contentType
            case "--upstream": upstream = arguments.next() ?? ""
            default:
                FileHandle.standardError.write(Data("usage: bench-ceiling --kind hummingbird|nio --port P --body-file F\n".utf8))
                exit(2)
            }
        }
        guard let body = FileManager.default.contents(atPath: bodyFile) else {
            FileHandle.standardError.write(Data("bench-ceiling: cannot read --body-file '\(bodyFile)'\n".utf8))
            exit(2)
        }
        switch kind {
        case "hummingbird": try await runHummingbird(port: port, body: body, contentType: contentType)
        case "nio": try await runNIO(port: port, body: body, contentType: contentType)
        case "hummingbird-ahc": try await runProxy(port: port, upstream: upstream)
        case "nio-proxy": try await runNIOProxy(port: port, upstream: upstream)
        default:
            FileHandle.standardError.write(Data("bench-ceiling: --kind must be hummingbird, nio, hummingbird-ahc or nio-proxy\n".utf8))
            exit(2)
        }
    }

    static func runHummingbird(port: Int, body: Data, contentType: String) async throws {
        let buffer = ByteBuffer(bytes: body)
        let responder = CallbackResponder { (request: Request, _: BasicRequestContext) in
            _ = try await request.body.collect(upTo: 1 << 20)
            return Response(status: .ok, headers: [.contentType: contentType], body: .init(byteBuffer: buffer))
        }
        let app = Application(responder: responder, configuration: .init(address: .hostname("127.0.0.1", port: port)))
        try await app.runService()
    }

    static func runProxy(port: Int, upstream: String) async throws {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let responder = CallbackResponder { (request: Request, _: BasicRequestContext) in
            var outbound = HTTPClientRequest(url: upstream)
            outbound.method = .POST
            outbound.headers.add(name: "content-type", value: request.headers[.contentType] ?? "application/json")
            outbound.body = .bytes(try await request.body.collect(upTo: 1 << 20))
            let answer = try await client.execute(outbound, timeout: .seconds(30))
            let bytes = try await answer.body.collect(upTo: 1 << 20)
            return Response(status: .init(code: Int(answer.status.code)), headers: [.contentType: answer.headers.first(name: "content-type") ?? "application/json"],
                            body: .init(byteBuffer: bytes))
        }
        let app = Application(responder: responder, configuration: .init(address: .hostname("127.0.0.1", port: port)))
        try await app.runService()
        try await client.shutdown()
    }

    static func runNIO(port: Int, body: Data, contentType: String) async throws {
        let buffer = ByteBuffer(bytes: body)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Answer(body: buffer, contentType: contentType))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        try await channel.closeFuture.get()
    }
}

extension BenchCeiling {
    static func runNIOProxy(port: Int, upstream: String) async throws {
        guard let url = URL(string: upstream), let host = url.host, let upstreamPort = url.port else {
            FileHandle.standardError.write(Data("bench-ceiling: --upstream must be http://host:port/…\n".utf8))
            exit(2)
        }
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // No pipelining assistance: it stops reading while an answer is pending (two
                    // epoll changes per request); requests go upstream in order, answers come back in order.
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false)
                    try channel.pipeline.syncOperations.addHandler(ProxyFrontend(host: host, port: upstreamPort))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        try await channel.closeFuture.get()
    }
}

/// The caller's side of the plainest proxy: one upstream connection of its own, opened on
/// its event loop when the caller connects; request parts go across unchanged.
final class ProxyFrontend: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let host: String
    let port: Int
    private var upstream: (any Channel)?
    private var waiting: [HTTPClientRequestPart] = []

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    func channelActive(context: ChannelHandlerContext) {
        let caller = context.channel
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ProxyBackend(caller: caller))
                }
            }
            .connect(host: host, port: port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    bound.value.upstream = channel
                    for part in bound.value.waiting { channel.write(part, promise: nil) }
                    bound.value.waiting = []
                    channel.flush()
                case .failure:
                    caller.close(promise: nil)
                }
            }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part: HTTPClientRequestPart
        switch unwrapInboundIn(data) {
        case .head(let head): part = .head(head)
        case .body(let body): part = .body(.byteBuffer(body))
        case .end(let trailers): part = .end(trailers)
        }
        guard let upstream else {
            waiting.append(part)
            return
        }
        if case .end = part { upstream.writeAndFlush(part, promise: nil) } else { upstream.write(part, promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        upstream?.close(promise: nil)
        context.fireChannelInactive()
    }
}

/// The upstream's side: response parts go back to the caller unchanged.
final class ProxyBackend: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    let caller: any Channel

    init(caller: any Channel) { self.caller = caller }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): caller.write(HTTPServerResponsePart.head(head), promise: nil)
        case .body(let body): caller.write(HTTPServerResponsePart.body(.byteBuffer(body)), promise: nil)
        case .end(let trailers): caller.writeAndFlush(HTTPServerResponsePart.end(trailers), promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        caller.close(promise: nil)
        context.fireChannelInactive()
    }
}

/// Answers each request, once its body has arrived, with the same bytes.
final class Answer: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let body: ByteBuffer
    let contentType: String

    init(body: ByteBuffer, contentType: String) {
        self.body = body
        self.contentType = contentType
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        var head = HTTPResponseHead(version: .http1_1, status: .ok)
        head.headers.add(name: "content-type", value: contentType)
        head.headers.add(name: "content-length", value: String(body.readableBytes))
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
