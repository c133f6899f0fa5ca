import Foundation
import NIOCore
import NIOHTTP1

/// A request NIO's HTTP parser refuses (a header section over its limit, conflicting or invalid
/// lengths, a malformed line) gets the gateway's JSON error — 431 `headers_too_large` for the
/// header section, 400 `bad_request` for the rest — and `Connection: close`, then closes the
/// connection once the answer is written (the parser cannot go on after an error). (NIO's and
/// Hummingbird's own answers are a bare 400 with no body.) When an answer is already under way
/// on the connection, it is only closed. The error is not passed on, so no second answer is
/// attempted.
final class ParseErrorAnswer: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var answering = false

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parse = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        guard !answering else {
            context.close(promise: nil)
            return
        }
        Self.refusal(for: parse).answerAndClose(context: context)
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

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200: answering = true
        case .end: answering = false
        default: break
        }
        context.write(data, promise: promise)
    }
}

extension GatewayError {
    /// Answers with this error (JSON, `Connection: close`) on a connection the HTTP exchange
    /// cannot go on with, and closes it once the answer is written. `context`: a handler's
    /// right after NIO's HTTP codec.
    func answerAndClose(context: ChannelHandlerContext) {
        let body = body()
        let headers = HTTPHeaders([
            ("Content-Type", "application/json"), ("Cache-Control", "no-store"), ("Connection", "close"), ("Content-Length", String(body.count)),
        ])
        let head = HTTPResponseHead(version: .http1_1, status: .init(statusCode: Int(status.code)), headers: headers)
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
