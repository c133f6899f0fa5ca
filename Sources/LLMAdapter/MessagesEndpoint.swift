import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SwitchboardJSON

/// `POST /v1/messages` (the Anthropic Messages API), `GET /v1/models`, `GET /healthz`.
struct MessagesEndpoint: Sendable {
    let backend: any LLMBackend
    /// SHA-256 of the adapter key, when one is required (compared in constant time).
    let apiKeyDigest: SHA256.Digest?
    let maxRequestBody: Int
    let logger: Logger

    func register(on router: Router<BasicRequestContext>) {
        router.post("/v1/messages") { request, _ in await self.messages(request) }
        router.get("/v1/models") { request, _ in
            if let failure = self.authenticate(request.headers) { return Self.errorResponse(failure, requestID: Self.newRequestID()) }
            let id = backend.model ?? "as-requested"
            let model: JSONValue = ["type": "model", "id": .string(id), "display_name": .string(id), "created_at": "2026-01-01T00:00:00Z"]
            return Self.json(["data": [model], "has_more": false, "first_id": .string(id), "last_id": .string(id)], requestID: Self.newRequestID())
        }
        router.get("/healthz") { _, _ in
            Self.json(["status": "ok", "backend": .string(backend.name), "model": backend.model.map(JSONValue.string) ?? .null], requestID: Self.newRequestID())
        }
    }

    func messages(_ request: Request) async -> Response {
        let requestID = Self.newRequestID()
        let started = ContinuousClock.now
        var streamed = false
        let response: Response
        do {
            let parsed = try await parse(request)
            streamed = parsed.stream
            response = try await reply(to: parsed, requestID: requestID)
        } catch {
            response = Self.errorResponse(error, requestID: requestID)
        }
        let elapsed = ContinuousClock.now - started
        logger.info("messages", metadata: [
            "request_id": "\(requestID)", "backend": "\(backend.name)", "stream": "\(streamed)", "status": "\(response.status.code)",
            "ms": "\(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)",
        ])
        return response
    }

    private func parse(_ request: Request) async throws(LLMError) -> MessagesRequest {
        if let failure = authenticate(request.headers) { throw failure }
        if let type = request.headers[.contentType]?.lowercased(), !type.hasPrefix("application/json") {
            throw .invalidRequest("content-type must be application/json")
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxRequestBody {
            throw .tooLarge("the request body is \(length) bytes; the limit is \(maxRequestBody)")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxRequestBody)
        } catch {
            throw .tooLarge("the request body is larger than \(maxRequestBody) bytes")
        }
        guard buffer.readableBytes > 0 else { throw .invalidRequest("the request body is empty; send a JSON object") }
        guard let json = JSONValue.parse(buffer.readableBytesView) else { throw .invalidRequest("the request body is not valid JSON") }
        var parsed = try MessagesRequest(json: json)
        parsed.clientHeaders = .init(version: request.headers[HTTPField.Name("anthropic-version")!], beta: request.headers[HTTPField.Name("anthropic-beta")!])
        return parsed
    }

    private func reply(to parsed: MessagesRequest, requestID: String) async throws(LLMError) -> Response {
        switch try await backend.respond(to: parsed, requestID: requestID) {
        case .message(let buffer):
            return Response(status: .ok, headers: Self.headers(contentType: "application/json", requestID: requestID), body: .init(byteBuffer: buffer))
        case .events(let stream):
            var headers = Self.headers(contentType: "text/event-stream; charset=utf-8", requestID: requestID)
            headers[.cacheControl] = "no-cache"
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                for try await event in stream { try await writer.write(event) }
                try await writer.finish(nil)
            })
        }
    }

    /// nil when the request may pass.
    func authenticate(_ headers: HTTPFields) -> LLMError? {
        guard let apiKeyDigest else { return nil }
        var presented = headers[HTTPField.Name("x-api-key")!]
        if presented == nil, let authorization = headers[.authorization], authorization.lowercased().hasPrefix("bearer ") {
            presented = String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        }
        guard let presented, !presented.isEmpty else {
            return .authentication("an API key is required: send it in the x-api-key header")
        }
        // Digests of equal length compared in constant time.
        guard SHA256.hash(data: Data(presented.utf8)) == apiKeyDigest else { return .authentication("invalid x-api-key") }
        return nil
    }

    static func errorResponse(_ error: any Error, requestID: String) -> Response {
        let failure = error as? LLMError ?? .api("internal error")
        var headers = headers(contentType: "application/json", requestID: requestID)
        if let retryAfter = failure.retryAfter { headers[.retryAfter] = retryAfter }
        let status = HTTPResponse.Status(code: failure.status, reasonPhrase: failure.status == 529 ? "Overloaded" : "")
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: failure.json.encoded())))
    }

    static func json(_ value: JSONValue, requestID: String) -> Response {
        Response(status: .ok, headers: headers(contentType: "application/json", requestID: requestID), body: .init(byteBuffer: ByteBuffer(bytes: value.encoded())))
    }

    static func headers(contentType: String, requestID: String) -> HTTPFields {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        headers[HTTPField.Name("request-id")!] = requestID
        return headers
    }

    static func newRequestID() -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<12).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return SigV4Signer.hex(bytes)
    }
}

/// Unknown paths and methods answer in the Anthropic error shape, not with an empty 404.
struct AnthropicErrorMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            let failure: LLMError = error.status == .notFound
                ? .notFound("\(request.method.rawValue) \(request.uri.path) is not part of this API; use POST /v1/messages")
                : LLMError(status: Int(error.status.code), type: "invalid_request_error", message: error.body ?? error.status.reasonPhrase)
            return MessagesEndpoint.errorResponse(failure, requestID: MessagesEndpoint.newRequestID())
        }
    }
}
