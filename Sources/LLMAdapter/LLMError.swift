import HTTPTypes
import NIOCore
import SwitchboardJSON

/// An error in the Anthropic error shape: `{"type":"error","error":{"type":…,"message":…}}`,
/// with the HTTP status the Messages API uses for it. The `type` strings are stable codes.
struct LLMError: Error, Sendable, Equatable {
    var status: Int
    var type: String
    var message: String
    /// Seconds, passed on as `retry-after` (429/529 from upstream, 503 here).
    var retryAfter: String?

    static func invalidRequest(_ message: String) -> LLMError { .init(status: 400, type: "invalid_request_error", message: message) }
    static func authentication(_ message: String) -> LLMError { .init(status: 401, type: "authentication_error", message: message) }
    static func notFound(_ message: String) -> LLMError { .init(status: 404, type: "not_found_error", message: message) }
    static func tooLarge(_ message: String) -> LLMError { .init(status: 413, type: "request_too_large", message: message) }
    static func rateLimited(_ message: String, retryAfter: String?) -> LLMError {
        .init(status: 429, type: "rate_limit_error", message: message, retryAfter: retryAfter)
    }
    static func overloaded(_ message: String, retryAfter: String?) -> LLMError {
        .init(status: 529, type: "overloaded_error", message: message, retryAfter: retryAfter)
    }
    /// The upstream could not be reached or answered with something that is not the API.
    static func badGateway(_ message: String) -> LLMError { .init(status: 502, type: "api_error", message: message) }
    static func timeout(_ message: String) -> LLMError { .init(status: 504, type: "timeout_error", message: message) }
    static func api(_ message: String, status: Int = 500) -> LLMError { .init(status: status, type: "api_error", message: message) }

    var json: JSONValue { ["type": "error", "error": ["type": .string(type), "message": .string(message)]] }

    /// The same error as one Messages SSE `error` event (for failures after the stream began).
    var sseEvent: ByteBuffer { SSE.event("error", json) }
}
