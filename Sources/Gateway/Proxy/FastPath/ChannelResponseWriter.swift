import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// Writes a Hummingbird ``Response`` (built by the async path for a request the event-loop
/// path took) through that connection's ``ProxyFastPathHandler``, then lets the handler go on
/// with the next request.
struct ChannelResponseWriter: Sendable {
    let handler: NIOLoopBound<ProxyFastPathHandler>

    func send(_ response: Response) async {
        var head = HTTPResponseHead(response.head)
        ResponseShaper.stamp(&head.headers)
        let body = response.body
        let handler = self.handler
        do {
            try await write(.head(head))
            try await body.write(BodyWriter(channel: self))
            handler.eventLoop.execute { handler.value.finished() }
        } catch {
            handler.eventLoop.execute { handler.value.finished(failed: true) }
        }
    }

    func write(_ part: HTTPServerResponsePart) async throws {
        let handler = self.handler
        try await handler.eventLoop.flatSubmit {
            handler.value.write(part) ?? handler.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }.get()
    }

    private struct BodyWriter: ResponseBodyWriter {
        let channel: ChannelResponseWriter

        mutating func write(_ buffer: ByteBuffer) async throws {
            try await channel.write(.body(.byteBuffer(buffer)))
        }

        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
            try await channel.write(.end(trailingHeaders.map(HTTPHeaders.init)))
        }
    }
}
