import Foundation
import LLMAdapter
import SwitchboardJSON
import Testing

/// Errors at the adapter's own face: authentication, limits, malformed requests, unknown paths.
@Suite("LLM adapter, errors at the face (integration)", .timeLimit(.minutes(1)))
struct ErrorIntegrationTests {
    static let adapterKey = "sb-llm-adapter-key-9f2c"
    static let request: JSONValue = ["model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [["role": "user", "content": "hi"]]]

    static func keyed() -> LLMAdapterOptions {
        var options = LLMHarness.options()
        options.apiKey = adapterKey
        return options
    }

    /// The Anthropic error shape, exactly: `{"type":"error","error":{"type":…,"message":…}}`, and a request id.
    static func expectError(_ reply: LLMReply, status: Int, type: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(reply.status == status, "\(reply.body)", sourceLocation: sourceLocation)
        #expect(reply.header("content-type") == "application/json", sourceLocation: sourceLocation)
        #expect(reply.header("request-id")?.isEmpty == false, "every error has a request-id", sourceLocation: sourceLocation)
        let json = reply.jsonValue
        #expect(json?.object?.keys.sorted() == ["error", "type"], "\(reply.body)", sourceLocation: sourceLocation)
        #expect(json?["type"] == "error", sourceLocation: sourceLocation)
        #expect(json?["error"]?.object?.keys.sorted() == ["message", "type"], "\(reply.body)", sourceLocation: sourceLocation)
        #expect(json?["error"]?["type"] == .string(type), sourceLocation: sourceLocation)
        #expect(json?["error"]?["message"]?.string?.isEmpty == false, sourceLocation: sourceLocation)
    }

    @Test("with an adapter key: none → 401, a wrong one → 401, the right one by x-api-key or Bearer → 200")
    func adapterKey() async throws {
        try await LLMHarness.withAdapter(Self.keyed()) { client in
            let missing = try await client.messages(Self.request)
            Self.expectError(missing, status: 401, type: "authentication_error")
            #expect(missing.errorMessage?.contains("x-api-key") == true)

            let wrong = try await client.messages(Self.request, headers: [("x-api-key", "sb-llm-adapter-key-0000")])
            Self.expectError(wrong, status: 401, type: "authentication_error")
            #expect(!wrong.body.contains(Self.adapterKey))

            let wrongBearer = try await client.messages(Self.request, headers: [("authorization", "Bearer nope")])
            Self.expectError(wrongBearer, status: 401, type: "authentication_error")

            let empty = try await client.messages(Self.request, headers: [("x-api-key", "")])
            Self.expectError(empty, status: 401, type: "authentication_error")

            let viaHeader = try await client.messages(Self.request, headers: [("x-api-key", Self.adapterKey)])
            #expect(viaHeader.status == 200, "\(viaHeader.body)")
            #expect(viaHeader.jsonValue?["type"] == "message")

            let viaBearer = try await client.messages(Self.request, headers: [("authorization", "Bearer \(Self.adapterKey)")])
            #expect(viaBearer.status == 200, "\(viaBearer.body)")

            // The key guards the model list too, but not the health check.
            let models = try await client.send(.GET, "/v1/models", headers: [], body: nil)
            Self.expectError(models, status: 401, type: "authentication_error")
            let modelsWithKey = try await client.send(.GET, "/v1/models", headers: [("x-api-key", Self.adapterKey)], body: nil)
            #expect(modelsWithKey.status == 200)
            #expect(modelsWithKey.jsonValue?["data"]?.array?.first?["id"] == "switchboard-offline-planner")
            let health = try await client.send(.GET, "/healthz", headers: [], body: nil)
            #expect(health.status == 200)
        }
    }

    @Test("without an adapter key, requests need no key")
    func noAdapterKey() async throws {
        let reply = try await LLMHarness.withAdapter(LLMHarness.options()) { client in try await client.messages(Self.request) }
        #expect(reply.status == 200, "\(reply.body)")
    }

    @Test("a body over maxRequestBody is 413 request_too_large, with or without a content-length")
    func bodyTooLarge() async throws {
        var options = LLMHarness.options()
        options.maxRequestBody = 2048
        try await LLMHarness.withAdapter(options) { client in
            let big: JSONValue = ["model": "m", "max_tokens": 64, "messages": [["role": "user", "content": .string(String(repeating: "x", count: 4096))]]]
            let withLength = try await client.send(.POST, "/v1/messages", body: Array(big.encoded()))
            Self.expectError(withLength, status: 413, type: "request_too_large")
            let chunked = try await client.send(.POST, "/v1/messages", body: Array(big.encoded()), chunked: true)
            Self.expectError(chunked, status: 413, type: "request_too_large")
            // A small body sent the same way passes.
            let small = try await client.send(.POST, "/v1/messages", body: Array(Self.request.encoded()), chunked: true)
            #expect(small.status == 200, "\(small.body)")
        }
    }

    @Test("malformed requests are 400 invalid_request_error naming the problem")
    func malformed() async throws {
        try await LLMHarness.withAdapter(LLMHarness.options()) { client in
            let notJSON = try await client.send(.POST, "/v1/messages", body: Array(#"{"model": "m", "max_tokens": 5, "messages": ["#.utf8))
            Self.expectError(notJSON, status: 400, type: "invalid_request_error")
            #expect(notJSON.errorMessage?.contains("JSON") == true)

            let textPlain = try await client.send(.POST, "/v1/messages", headers: [("content-type", "text/plain")], body: Array(Self.request.encoded()))
            Self.expectError(textPlain, status: 400, type: "invalid_request_error")
            #expect(textPlain.errorMessage?.contains("content-type") == true)

            let empty = try await client.send(.POST, "/v1/messages", body: [])
            Self.expectError(empty, status: 400, type: "invalid_request_error")

            let noMaxTokens = try await client.messages(["model": "m", "messages": [["role": "user", "content": "hi"]]])
            Self.expectError(noMaxTokens, status: 400, type: "invalid_request_error")
            #expect(noMaxTokens.errorMessage?.contains("max_tokens") == true)

            let badRole = try await client.messages(["model": "m", "max_tokens": 5, "messages": [["role": "system", "content": "hi"]]])
            Self.expectError(badRole, status: 400, type: "invalid_request_error")
            #expect(badRole.errorMessage?.contains("messages.0.role") == true)

            let array = try await client.messages([1, 2, 3])
            Self.expectError(array, status: 400, type: "invalid_request_error")
        }
    }

    @Test("an unknown path is 404 not_found_error in the Anthropic shape")
    func unknownPath() async throws {
        try await LLMHarness.withAdapter(LLMHarness.options()) { client in
            let post = try await client.send(.POST, "/v1/complete", body: Array(Self.request.encoded()))
            Self.expectError(post, status: 404, type: "not_found_error")
            #expect(post.errorMessage?.contains("/v1/complete") == true)
            let get = try await client.send(.GET, "/nothing/here", headers: [], body: nil)
            Self.expectError(get, status: 404, type: "not_found_error")
        }
    }

    @Test("every error answer carries its own request-id")
    func requestIDsDiffer() async throws {
        try await LLMHarness.withAdapter(Self.keyed()) { client in
            let a = try await client.messages(Self.request)
            let b = try await client.messages(Self.request)
            #expect(a.status == 401 && b.status == 401)
            let ids = [a.header("request-id"), b.header("request-id")]
            #expect(ids[0] != nil && ids[0] != ids[1])
        }
    }
}
