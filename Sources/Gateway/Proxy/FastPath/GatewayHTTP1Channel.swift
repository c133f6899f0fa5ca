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

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.configureHTTPServerPipeline(
                withPipeliningAssistance: false,  // the fast path and NIOAsyncChannel keep answers in order
                withErrorHandling: false,  // ParseErrorAnswer answers parse errors
                withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: .init()
            )
            try pipeline.addHandler(ParseErrorAnswer())
            if let fastPath { try pipeline.addHandler(ProxyFastPathHandler(path: fastPath)) }
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value asyncChannel: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: asyncChannel, logger: logger)
    }
}
