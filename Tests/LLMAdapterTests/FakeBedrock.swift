import Crypto
import Foundation
import HTTPTypes
import Hummingbird
@testable import LLMAdapter
import NIOCore
import SwitchboardJSON
import SwitchboardTesting
import Synchronization

/// A real HTTP server on loopback that speaks the Bedrock runtime for an Anthropic model:
/// `POST /model/{modelId}/invoke` and `…/invoke-with-response-stream`. It verifies the SigV4
/// `Authorization` header from what arrived on the wire (method, path as sent, the headers
/// named in `SignedHeaders`, the body's SHA-256) with the test credentials, checks the session
/// token and the Bedrock body, records every request, and answers in the recorded shapes.
final class FakeBedrock: FakeUpstream {
    enum Reply: Sendable {
        /// The message (invoke) or its event stream (invoke-with-response-stream).
        case answer
        /// The event stream, waiting at `gate` once `message_start` and half of the next frame went out.
        case gatedStream
        /// An AWS error: `x-amzn-ErrorType` and `{"message":…}`.
        case exception(status: Int, type: String, message: String)
        /// `message_start`, `content_block_start`, then (after `gate`) an exception frame;
        /// with `deltaInSameChunk`, one delta frame and the exception frame go out in one write.
        case exceptionFrame(type: String, message: String, deltaInSameChunk: Bool)
        /// Half a frame after the first one, then (after `gate`) the connection drops.
        case dropMidFrame
        /// Half a frame after the first one, then (after `gate`) a clean end of the body.
        case endMidFrame
    }

    static let text = "Hello from Bedrock's fake Claude."
    static let deltas = ["Hello from ", "Bedrock's ", "fake Claude."]
    static let modelName = "claude-3-5-sonnet-20241022"

    let credentials: AWSCredentials
    let region: String
    let modelID: String
    let gate = FakeGate()
    private let script = Mutex<[Reply]>([])
    private let seen = Mutex<[ReceivedRequest]>([])
    /// Why a request was refused (signature, token, body), for failure messages.
    private let refusals = Mutex<[String]>([])
    private let server = Mutex<RunningServer?>(nil)

    var baseURL: String { server.withLock { $0!.baseURL } }
    var received: [ReceivedRequest] { seen.withLock { $0 } }
    var attempts: Int { seen.withLock { $0.count } }
    var refused: [String] { refusals.withLock { $0 } }

    private init(credentials: AWSCredentials, region: String, modelID: String) {
        self.credentials = credentials
        self.region = region
        self.modelID = modelID
    }

    static func start(
        accessKeyID: String = "AKIDEXAMPLE", secretAccessKey: String = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", sessionToken: String? = nil,
        region: String = "us-west-2", modelID: String = "anthropic.claude-3-5-sonnet-20241022-v2:0"
    ) async throws -> FakeBedrock {
        let fake = FakeBedrock(
            credentials: AWSCredentials(accessKeyID: accessKeyID, secretAccessKey: secretAccessKey, sessionToken: sessionToken), region: region, modelID: modelID)
        let router = Router()
        // Also behind one path segment, as a proxy in front of Bedrock would be.
        for action in ["invoke", "invoke-with-response-stream"] {
            router.post("/model/:modelId/\(action)") { request, context in
                let body = try await request.body.collect(upTo: 16 << 20)
                let raw = context.parameters.get("modelId") ?? ""
                return await fake.answer(ReceivedRequest(request, body: body), modelID: raw.removingPercentEncoding ?? raw, streaming: action != "invoke")
            }
            router.post("/:prefix/model/:modelId/\(action)") { request, context in
                let body = try await request.body.collect(upTo: 16 << 20)
                let raw = context.parameters.get("modelId") ?? ""
                return await fake.answer(ReceivedRequest(request, body: body), modelID: raw.removingPercentEncoding ?? raw, streaming: action != "invoke")
            }
        }
        let running = try await TestHTTPServer.start(router)
        fake.server.withLock { $0 = running }
        return fake
    }

    /// The next answers, in order; after them, `.answer`.
    func script(_ replies: [Reply]) { script.withLock { $0 += replies } }

    func stop() async {
        gate.releaseAll()
        let running = server.withLock { $0 }
        await running?.stop()
    }

    // MARK: - Checks

    /// The `Authorization` header recomputed from the request as received, or why it cannot be.
    func expectedAuthorization(for request: ReceivedRequest) -> Result<String, Refusal> {
        guard let authorization = request.header("authorization") else {
            return .failure(.init(status: 403, type: "MissingAuthenticationTokenException", message: "Missing Authentication Token"))
        }
        guard let date = request.header("x-amz-date"), date.count == 16 else {
            return .failure(.init(status: 403, type: "IncompleteSignatureException", message: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."))
        }
        let fields = Self.authorizationFields(authorization)
        let scope = "\(date.prefix(8))/\(region)/bedrock/aws4_request"
        guard authorization.hasPrefix("AWS4-HMAC-SHA256 "), fields["Credential"] == "\(credentials.accessKeyID)/\(scope)" else {
            return .failure(.init(status: 403, type: "InvalidSignatureException", message: "Credential should be scoped to a valid region and service, and to the date of X-Amz-Date."))
        }
        guard let signedHeaders = fields["SignedHeaders"]?.split(separator: ";").map(String.init), signedHeaders.contains("host") else {
            return .failure(.init(status: 403, type: "IncompleteSignatureException", message: "SignedHeaders must include host."))
        }
        var headers: [(String, String)] = []
        for name in signedHeaders {
            if name == "host" {
                headers.append(("host", request.authority ?? ""))
            } else {
                for value in request.values(name) { headers.append((name, value)) }
            }
        }
        let signer = SigV4Signer(credentials: credentials, region: region, service: "bedrock")
        let payloadHash = SigV4Signer.hex(SHA256.hash(data: request.body))
        let (pathPart, query) = Self.splitTarget(request.path)
        return .success(signer.authorization(method: request.method, path: pathPart, query: query, headers: headers, payloadHash: payloadHash, timestamp: date))
    }

    struct Refusal: Error, Sendable {
        var status: Int
        var type: String
        var message: String
    }

    private func check(_ request: ReceivedRequest, modelID requested: String) -> Refusal? {
        switch expectedAuthorization(for: request) {
        case .failure(let refusal): return refusal
        case .success(let expected):
            guard expected == request.header("authorization") else {
                return Refusal(
                    status: 403, type: "InvalidSignatureException",
                    message: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
            }
        }
        if let token = credentials.sessionToken {
            guard request.header("x-amz-security-token") == token else {
                return Refusal(status: 403, type: "UnrecognizedClientException", message: "The security token included in the request is invalid.")
            }
        }
        guard requested == modelID else {
            return Refusal(status: 404, type: "ResourceNotFoundException", message: "Could not resolve the foundation model from the provided model identifier.")
        }
        guard let body = request.json?.object else {
            return Refusal(status: 400, type: "ValidationException", message: "Malformed input request, please reformat your input and try again.")
        }
        guard body["anthropic_version"]?.string == "bedrock-2023-05-31" else {
            return Refusal(status: 400, type: "ValidationException", message: "Malformed input request: #: required key [anthropic_version] not found, please reformat your input and try again.")
        }
        for key in ["model", "stream"] where body[key] != nil {
            return Refusal(status: 400, type: "ValidationException", message: "Malformed input request: #: extraneous key [\(key)] is not permitted, please reformat your input and try again.")
        }
        guard body["max_tokens"]?.integer != nil, body["messages"]?.array != nil else {
            return Refusal(status: 400, type: "ValidationException", message: "Malformed input request: #: required key [max_tokens] not found, please reformat your input and try again.")
        }
        return nil
    }

    // MARK: - Answers

    private func answer(_ request: ReceivedRequest, modelID: String, streaming: Bool) async -> Response {
        seen.withLock { $0.append(request) }
        if let refusal = check(request, modelID: modelID) {
            refusals.withLock { $0.append("\(refusal.type): \(refusal.message)") }
            return Self.exception(status: refusal.status, type: refusal.type, message: refusal.message)
        }
        let reply = script.withLock { $0.isEmpty ? Reply.answer : $0.removeFirst() }
        switch reply {
        case .exception(let status, let type, let message):
            return Self.exception(status: status, type: type, message: message)
        case .answer where !streaming:
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            headers[HTTPField.Name("x-amzn-RequestId")!] = UUID().uuidString.lowercased()
            headers[HTTPField.Name("X-Amzn-Bedrock-Input-Token-Count")!] = "12"
            headers[HTTPField.Name("X-Amzn-Bedrock-Output-Token-Count")!] = "9"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: Self.message.encoded())))
        case .answer, .gatedStream:
            let frames = Self.frames(Self.streamEvents)
            let gated = if case .gatedStream = reply { true } else { false }
            let gate = self.gate
            return Response(status: .ok, headers: Self.streamHeaders, body: ResponseBody { writer in
                // The first frame and half the second, then (gated) a pause, then the rest cut mid-frame.
                let half = frames[1].readableBytes / 2
                var first = frames[0]
                first.writeImmutableBuffer(frames[1].getSlice(at: frames[1].readerIndex, length: half)!)
                try await writer.write(first)
                if gated { await gate.wait() }
                var rest = frames[1].getSlice(at: frames[1].readerIndex + half, length: frames[1].readableBytes - half)!
                for frame in frames.dropFirst(2) {
                    let cut = frame.readableBytes / 3
                    rest.writeImmutableBuffer(frame.getSlice(at: frame.readerIndex, length: cut)!)
                    try await writer.write(rest)
                    rest = frame.getSlice(at: frame.readerIndex + cut, length: frame.readableBytes - cut)!
                }
                try await writer.write(rest)
                try await writer.finish(nil)
            })
        case .exceptionFrame(let type, let message, let deltaInSameChunk):
            let frames = Self.frames(Array(Self.streamEvents.prefix(3)))
            let gate = self.gate
            return Response(status: .ok, headers: Self.streamHeaders, body: ResponseBody { writer in
                var first = frames[0]
                first.writeImmutableBuffer(frames[1])
                try await writer.write(first)
                await gate.wait()
                var last = deltaInSameChunk ? frames[2] : ByteBuffer()
                last.writeImmutableBuffer(Self.exceptionFrame(type: type, message: message))
                try await writer.write(last)
                try await writer.finish(nil)
            })
        case .dropMidFrame, .endMidFrame:
            let frames = Self.frames(Array(Self.streamEvents.prefix(2)))
            let drop = if case .dropMidFrame = reply { true } else { false }
            let gate = self.gate
            return Response(status: .ok, headers: Self.streamHeaders, body: ResponseBody { writer in
                // One write: the first frame and half the second; then (after `gate`) the end.
                var out = frames[0]
                out.writeImmutableBuffer(frames[1].getSlice(at: frames[1].readerIndex, length: frames[1].readableBytes / 2)!)
                try await writer.write(out)
                await gate.wait()
                if drop { throw FakeUpstreamBroke() }
                try await writer.finish(nil)
            })
        }
    }

    // MARK: - Recorded shapes

    static var message: JSONValue {
        [
            "id": "msg_bdrk_01JtNHbJXqYLNc6xJzHzJrP3", "type": "message", "role": "assistant", "model": .string(modelName),
            "content": [["type": "text", "text": .string(text)]], "stop_reason": "end_turn", "stop_sequence": nil,
            "usage": ["input_tokens": 12, "output_tokens": 9],
        ]
    }

    /// The Messages stream events Bedrock wraps, in order.
    static var streamEvents: [JSONValue] {
        var events: [JSONValue] = [
            [
                "type": "message_start",
                "message": [
                    "id": "msg_bdrk_01JtNHbJXqYLNc6xJzHzJrP3", "type": "message", "role": "assistant", "model": .string(modelName), "content": [],
                    "stop_reason": nil, "stop_sequence": nil, "usage": ["input_tokens": 12, "output_tokens": 1],
                ],
            ],
            ["type": "content_block_start", "index": 0, "content_block": ["type": "text", "text": ""]],
        ]
        for delta in deltas {
            events.append(["type": "content_block_delta", "index": 0, "delta": ["type": "text_delta", "text": .string(delta)]])
        }
        events.append(["type": "content_block_stop", "index": 0])
        events.append(["type": "message_delta", "delta": ["stop_reason": "end_turn", "stop_sequence": nil], "usage": ["output_tokens": 9]])
        events.append([
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": ["inputTokenCount": 12, "outputTokenCount": 9, "invocationLatency": 511, "firstByteLatency": 402],
        ])
        return events
    }

    /// One `chunk` event frame per Messages event: `{"bytes": base64(event), "p": padding}`.
    static func frames(_ events: [JSONValue]) -> [ByteBuffer] {
        events.enumerated().map { index, event in
            let payload: JSONValue = ["bytes": .string(event.encoded().base64EncodedString()), "p": .string(String("abcdefghijklmnopqrstuvwxyzABCDEF".prefix(index + 3)))]
            return EventStreamMessage(
                headers: [":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"], payload: Array(payload.encoded())
            ).encoded()
        }
    }

    static func exceptionFrame(type: String, message: String) -> ByteBuffer {
        let payload: JSONValue = ["message": .string(message)]
        return EventStreamMessage(
            headers: [":exception-type": type, ":content-type": "application/json", ":message-type": "exception"], payload: Array(payload.encoded())
        ).encoded()
    }

    static var streamHeaders: HTTPFields {
        var headers = HTTPFields()
        headers[.contentType] = "application/vnd.amazon.eventstream"
        headers[HTTPField.Name("x-amzn-RequestId")!] = UUID().uuidString.lowercased()
        headers[HTTPField.Name("X-Amzn-Bedrock-Content-Type")!] = "application/json"
        return headers
    }

    static func exception(status: Int, type: String, message: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[HTTPField.Name("x-amzn-RequestId")!] = UUID().uuidString.lowercased()
        headers[HTTPField.Name("x-amzn-ErrorType")!] = "\(type):http://internal.amazon.com/coral/com.amazon.bedrock/"
        let body: JSONValue = ["message": .string(message)]
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body.encoded())))
    }

    /// `Credential=…, SignedHeaders=…, Signature=…` as a dictionary.
    static func authorizationFields(_ header: String) -> [String: String] {
        var fields: [String: String] = [:]
        let afterScheme = header.split(separator: " ", maxSplits: 1).dropFirst().first ?? ""
        for part in afterScheme.split(separator: ",") {
            let pair = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        return fields
    }

    static func splitTarget(_ target: String) -> (String, String?) {
        guard let q = target.firstIndex(of: "?") else { return (target, nil) }
        return (String(target[..<q]), String(target[target.index(after: q)...]))
    }
}
