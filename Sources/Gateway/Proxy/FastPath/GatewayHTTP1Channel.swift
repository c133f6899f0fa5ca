import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Hummingbird's HTTP/1.1 child channel with the proxy's event-loop path in front of the
/// HTTP-types conversion: ``ProxyFastPathHandler`` sees NIO's own request parts (no
/// `HTTPRequest` is built for the requests it takes, no `HTTPResponse` for their answers);
/// what it passes on gets the same pipeline as Hummingbird's `HTTP1Channel`.
struct GatewayHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    /// Nil: every request goes to Hummingbird (`SWITCHBOARD_FAST_PATH=off`).
    let fastPath: ProxyFastPath?
    let timeouts: CallerConnection.Limits
    let connections: InboundConnections

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let admitted = connections.admit(channel)
        return channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.configureHTTPServerPipeline(
                withPipeliningAssistance: false,  // the fast path and NIOAsyncChannel keep answers in order
                withErrorHandling: false,  // CallerConnection answers parse errors
                withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: .init()
            )
            let caller = CallerConnection(limits: timeouts)
            try pipeline.addHandler(CallerConnection.Bytes(caller), position: .first)
            try pipeline.addHandler(caller)
            if let fastPath { try pipeline.addHandler(ProxyFastPathHandler(path: fastPath)) }
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            let value = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
            // Over the limit: the whole pipeline (so nothing reads a part it does not expect), then
            // closed before a byte is read; Hummingbird sees a connection that ends at once.
            if !admitted { try pipeline.addHandler(InboundConnections.Refusal(), position: .first) }
            return value
        }
    }

    func handle(value asyncChannel: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: asyncChannel, logger: logger)
    }
}
