import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardJSON

/// AWS Bedrock `InvokeModel` / `InvokeModelWithResponseStream` for Anthropic models, signed
/// with SigV4. The Messages body goes in nearly as is (`anthropic_version:
/// "bedrock-2023-05-31"` instead of `model` and `stream`); answers come back in the Messages
/// shape, and the event stream frames are unwrapped into Messages SSE events.
struct BedrockBackend: LLMBackend {
    struct Configuration: Sendable {
        var credentials: AWSCredentials
        var region: String
        var modelID: String
        /// Default `https://bedrock-runtime.{region}.amazonaws.com`.
        var endpoint: String?
        /// The signing clock (tests pin it).
        var now: @Sendable () -> Date = { Date() }
    }

    /// Fields Bedrock's Anthropic models accept; anything else would be a ValidationException.
    static let forwardedFields: Set<String> = [
        "max_tokens", "system", "messages", "temperature", "top_p", "top_k", "tools", "tool_choice", "stop_sequences", "thinking",
    ]

    let configuration: Configuration
    let caller: UpstreamCaller
    var name: String { "bedrock" }
    var model: String? { configuration.modelID }

    var endpoint: String { (configuration.endpoint ?? "https://bedrock-runtime.\(configuration.region).amazonaws.com").trimmingSlash }

    /// The Bedrock body for a Messages request.
    static func bedrockBody(_ request: MessagesRequest) -> JSONValue {
        var body = request.body.filter { forwardedFields.contains($0.key) }
        body["anthropic_version"] = "bedrock-2023-05-31"
        if let beta = request.clientHeaders.beta {
            let flags = beta.split(separator: ",").map { JSONValue.string($0.trimmingCharacters(in: .whitespaces)) }
            if !flags.isEmpty { body["anthropic_beta"] = .array(flags) }
        }
        return .object(body)
    }

    func respond(to request: MessagesRequest, requestID: String) async throws(LLMError) -> BackendReply {
        let bytes = Self.bedrockBody(request).encoded()
        let operation = "/model/\(SigV4Signer.uriEncode(configuration.modelID))/\(request.stream ? "invoke-with-response-stream" : "invoke")"
        guard let base = URL(string: endpoint), let host = base.host else { throw .badGateway("the Bedrock endpoint '\(endpoint)' is not a URL") }
        // An endpoint with a path (a proxy in front of Bedrock) is signed with that path, as the AWS SDKs do.
        let path = base.path(percentEncoded: true).trimmingSlash + operation
        let hostHeader = base.port.map { host + ":\($0)" } ?? host
        let signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region, service: "bedrock")
        let accept = request.stream ? "application/vnd.amazon.eventstream" : "application/json"
        let (response, deadline) = try await caller.send(streaming: request.stream, requestID: requestID, build: { () throws(LLMError) -> HTTPClientRequest in
            let headers: [(String, String)] = [("host", hostHeader), ("content-type", "application/json"), ("accept", accept)]
            let signed = signer.sign(method: "POST", path: path, headers: headers, body: bytes, date: configuration.now())
            var upstream = HTTPClientRequest(url: endpoint + operation)
            upstream.method = .POST
            for (name, value) in headers + signed { upstream.headers.add(name: name, value: value) }
            upstream.body = .bytes(ByteBuffer(bytes: bytes))
            return upstream
        }, map: Self.mapFailure)
        if request.stream {
            let decoder = StreamUnwrapper()
            return .events(StreamRelay.relay(
                response.body, upstream: "Bedrock", transform: { chunk in decoder.events(from: chunk) },
                atEnd: { decoder.hasPendingBytes ? [LLMError.badGateway("Bedrock's stream ended in the middle of a frame").sseEvent] : [] }))
        }
        let buffer = try await caller.collect(response, until: deadline)
        guard JSONValue.parse(buffer.readableBytesView)?["type"]?.string == "message" else {
            throw .badGateway("Bedrock answered with something that is not a message")
        }
        return .message(buffer)
    }

    /// Turns Bedrock's errors (`x-amzn-ErrorType` / `__type`, `message`) into Messages errors.
    static func mapFailure(_ failure: UpstreamCaller.Failure) -> LLMError {
        let parsed = JSONValue.parse(failure.body.readableBytesView)
        let message = parsed?["message"]?.string ?? parsed?["Message"]?.string ?? "Bedrock answered \(failure.status)"
        let rawType = failure.headers.first(name: "x-amzn-errortype") ?? parsed?["__type"]?.string
        return map(exception: rawType, status: failure.status, message: message, retryAfter: failure.headers.first(name: "retry-after"))
    }

    static func map(exception rawType: String?, status: Int?, message: String, retryAfter: String? = nil) -> LLMError {
        // `ThrottlingException:http://internal.amazon.com/…` or `com.amazon…#ThrottlingException`.
        var type = rawType.map { String($0.split(separator: ":").first ?? "") } ?? ""
        if let hash = type.lastIndex(of: "#") { type = String(type[type.index(after: hash)...]) }
        switch type.lowercased() {
        case "validationexception": return .invalidRequest("Bedrock: \(message)")
        case "accessdeniedexception", "unrecognizedclientexception", "invalidsignatureexception", "expiredtokenexception",
            "incompletesignatureexception", "missingauthenticationtokenexception":
            return .badGateway("Bedrock refused the adapter's AWS credentials (\(type)): \(message)")
        case "resourcenotfoundexception": return .badGateway("Bedrock does not know the model (check BEDROCK_MODEL_ID): \(message)")
        case "throttlingexception", "modelnotreadyexception", "toomanyrequestsexception": return .rateLimited("Bedrock: \(message)", retryAfter: retryAfter)
        case "serviceunavailableexception": return .overloaded("Bedrock: \(message)", retryAfter: retryAfter)
        case "modeltimeoutexception": return .timeout("Bedrock: \(message)")
        case "internalserverexception": return .api("Bedrock: \(message)")
        case "modelstreamerrorexception", "modelerrorexception": return .badGateway("Bedrock: \(message)")
        default: break
        }
        switch status {
        case 400?: return .invalidRequest("Bedrock: \(message)")
        case 401?, 403?: return .badGateway("Bedrock refused the adapter's AWS credentials: \(message)")
        case 408?: return .timeout("Bedrock: \(message)")
        case 429?: return .rateLimited("Bedrock: \(message)", retryAfter: retryAfter)
        case 503?: return .overloaded("Bedrock: \(message)", retryAfter: retryAfter)
        case let s? where (500...599).contains(s): return .api("Bedrock: \(message)", status: s)
        default: return .badGateway("Bedrock: \(message)")
        }
    }
}

/// Bedrock event stream frames in, Messages SSE events out. Used by one stream at a time.
final class StreamUnwrapper: @unchecked Sendable {
    private var decoder = EventStreamDecoder()
    /// Set once the stream failed: what is left in the buffer no longer matters.
    private var failed = false

    var hasPendingBytes: Bool { !failed && decoder.pendingBytes > 0 }

    /// The events in `chunk`; a failure (exception frame, bad frame) comes last, as an SSE
    /// `error` event after everything decoded before it, and ends the stream.
    func events(from chunk: ByteBuffer) -> [ByteBuffer] {
        guard !failed else { return [] }
        var out: [ByteBuffer] = []
        do {
            try unwrap(chunk, into: &out)
        } catch {
            failed = true
            out.append(error.sseEvent)
        }
        return out
    }

    private func unwrap(_ chunk: ByteBuffer, into out: inout [ByteBuffer]) throws(LLMError) {
        let messages: [EventStreamMessage]
        do { messages = try decoder.feed(chunk) } catch {
            throw LLMError.badGateway("Bedrock's event stream is malformed (\(error))")
        }
        for message in messages {
            switch message.headers[":message-type"] {
            case "event"?:
                guard message.headers[":event-type"] == "chunk" else { continue }
                guard let wrapper = JSONValue.parse(message.payload), let encoded = wrapper["bytes"]?.string,
                      let inner = Data(base64Encoded: encoded), let event = JSONValue.parse(inner), let type = event["type"]?.string
                else { throw LLMError.badGateway("Bedrock sent a chunk that is not a Messages event") }
                var buffer = ByteBuffer()
                buffer.writeString("event: \(type)\ndata: ")
                buffer.writeBytes(inner)
                buffer.writeString("\n\n")
                out.append(buffer)
            case "exception"?, "error"?:
                let payload = JSONValue.parse(message.payload)
                let text = payload?["message"]?.string ?? payload?["Message"]?.string ?? message.headers[":error-message"] ?? "stream error"
                let type = message.headers[":exception-type"] ?? message.headers[":error-code"]
                throw BedrockBackend.map(exception: type, status: nil, message: text)
            default:
                continue
            }
        }
    }
}
