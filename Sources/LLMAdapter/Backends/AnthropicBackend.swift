import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import SwitchboardJSON

/// Forwards to the Anthropic Messages API. The key lives here, never in the agent; the
/// client's `anthropic-version` and `anthropic-beta` are passed on, streams are relayed as
/// they arrive.
struct AnthropicBackend: LLMBackend {
    struct Configuration: Sendable, Equatable {
        var apiKey: String
        var baseURL: String = "https://api.anthropic.com"
        /// Replaces the model the client asked for (the adapter decides which model runs).
        var model: String?
    }

    let configuration: Configuration
    let caller: UpstreamCaller
    var name: String { "anthropic" }
    var model: String? { configuration.model }

    func respond(to request: MessagesRequest, requestID: String) async throws(LLMError) -> BackendReply {
        var body = request.body
        if let model = configuration.model { body["model"] = .string(model) }
        let bytes = JSONValue.object(body).encoded()
        let url = configuration.baseURL.trimmingSlash + "/v1/messages"
        let (response, deadline) = try await caller.send(streaming: request.stream, requestID: requestID, build: { () throws(LLMError) -> HTTPClientRequest in
            var upstream = HTTPClientRequest(url: url)
            upstream.method = .POST
            upstream.headers.add(name: "x-api-key", value: configuration.apiKey)
            upstream.headers.add(name: "anthropic-version", value: request.clientHeaders.version ?? "2023-06-01")
            if let beta = request.clientHeaders.beta { upstream.headers.add(name: "anthropic-beta", value: beta) }
            upstream.headers.add(name: "content-type", value: "application/json")
            upstream.headers.add(name: "accept", value: request.stream ? "text/event-stream" : "application/json")
            upstream.body = .bytes(ByteBuffer(bytes: bytes))
            return upstream
        }, map: Self.mapFailure)
        if request.stream {
            return .events(StreamRelay.relay(response.body, upstream: "the Anthropic API"))
        }
        let buffer = try await caller.collect(response, until: deadline)
        guard JSONValue.parse(buffer.readableBytesView)?["type"]?.string == "message" else {
            throw .badGateway("the Anthropic API answered with something that is not a message")
        }
        return .message(buffer)
    }

    /// Client errors keep their status and text; the adapter's own key being refused is the
    /// adapter's problem (502), not the agent's (401).
    static func mapFailure(_ failure: UpstreamCaller.Failure) -> LLMError {
        let parsed = JSONValue.parse(failure.body.readableBytesView)
        let type = parsed?["error"]?["type"]?.string
        let message = parsed?["error"]?["message"]?.string ?? "the Anthropic API answered \(failure.status)"
        let retryAfter = failure.headers.first(name: "retry-after")
        switch failure.status {
        case 401, 403:
            return .badGateway("the Anthropic API refused the adapter's credentials (check ANTHROPIC_API_KEY): \(message)")
        case 429:
            return .rateLimited(message, retryAfter: retryAfter)
        case 529:
            return .overloaded(message, retryAfter: retryAfter)
        case 400, 404, 409, 413, 422:
            return LLMError(status: failure.status, type: type ?? "invalid_request_error", message: message)
        case 500...599:
            return LLMError(status: failure.status, type: type ?? "api_error", message: message, retryAfter: retryAfter)
        default:
            return .badGateway("the Anthropic API answered \(failure.status): \(message)")
        }
    }
}

extension String {
    var trimmingSlash: String { hasSuffix("/") ? String(dropLast()) : self }
}
