import NIOCore

/// One way to answer a Messages request. A backend is built once, from configuration, and
/// answers many requests concurrently.
protocol LLMBackend: Sendable {
    /// `anthropic`, `bedrock` or `offline` (status, logs).
    var name: String { get }
    /// The model the backend answers with, when it decides (nil: the request's).
    var model: String? { get }
    /// Answers one request. Errors before the answer begins are `LLMError`s in the Anthropic
    /// shape; a stream that breaks later ends with an SSE `error` event.
    func respond(to request: MessagesRequest, requestID: String) async throws(LLMError) -> BackendReply
}

/// What a backend gives back: a whole JSON message, or Messages SSE events as they come.
enum BackendReply: Sendable {
    case message(ByteBuffer)
    case events(AsyncThrowingStream<ByteBuffer, any Error>)
}
