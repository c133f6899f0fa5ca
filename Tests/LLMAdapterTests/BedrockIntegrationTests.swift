import Foundation
@testable import LLMAdapter
import SwitchboardJSON
import Testing

/// `switchboard llm` in front of a fake Bedrock runtime on loopback that verifies SigV4.
@Suite("LLM adapter → Bedrock (integration)", .timeLimit(.minutes(1)))
struct BedrockIntegrationTests {
    static let accessKeyID = "AKIDEXAMPLE"
    static let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    static let sessionToken = "SESSIONTOKENEXAMPLE"
    static let region = "us-west-2"
    static let modelID = "anthropic.claude-3-5-sonnet-20241022-v2:0"
    static let wirePath = "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke"

    static func options(_ fake: FakeBedrock, secret: String = secret, sessionToken: String? = nil) -> LLMAdapterOptions {
        LLMHarness.options(.bedrock(
            accessKeyID: accessKeyID, secretAccessKey: secret, sessionToken: sessionToken, region: region, modelID: modelID, endpoint: fake.baseURL))
    }

    static let request: JSONValue = [
        "model": "claude-3-5-sonnet-latest", "max_tokens": 300, "temperature": .number(0.2), "metadata": ["user_id": "u-1"],
        "system": "Be brief.", "messages": [["role": "user", "content": "Say hello."]],
    ]

    @Test("a pinned clock and session token: the exact body Bedrock receives, and a signature over accept;content-type;host;x-amz-date;x-amz-security-token")
    func pinnedSignature() async throws {
        try await withFake(try await FakeBedrock.start(sessionToken: Self.sessionToken)) { fake in
            var options = Self.options(fake, sessionToken: Self.sessionToken)
            let pinned = try #require(ISO8601DateFormatter().date(from: "2026-11-27T12:00:00Z"))
            options.now = { pinned }
            let body = #"{"model":"x","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#
            let reply = try await LLMHarness.withAdapter(options) { client in
                try await client.send(.POST, "/v1/messages", body: Array(body.utf8))
            }
            #expect(reply.status == 200, "\(reply.body) — fake refused: \(fake.refused)")
            #expect(fake.refused.isEmpty)
            let seen = try #require(fake.received.first)
            #expect(seen.method == "POST")
            #expect(seen.path == Self.wirePath)
            #expect(seen.bodyText == #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"content":"hi","role":"user"}]}"#)
            #expect(seen.header("x-amz-date") == "20261127T120000Z")
            #expect(seen.header("x-amz-security-token") == Self.sessionToken)
            #expect(seen.header("content-type") == "application/json")
            #expect(seen.header("accept") == "application/json")
            let authorization = try #require(seen.header("authorization"))
            #expect(authorization.hasPrefix(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261127/us-west-2/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, Signature="))
            let signature = String(authorization.split(separator: "=").last ?? "")
            #expect(signature.count == 64 && signature.allSatisfy(\.isHexDigit))
            // Recomputed here from the wire, with the host the fake was reached at.
            let signer = SigV4Signer(credentials: .init(accessKeyID: Self.accessKeyID, secretAccessKey: Self.secret, sessionToken: Self.sessionToken), region: "us-west-2", service: "bedrock")
            let expected = signer.authorization(
                method: "POST", path: Self.wirePath, query: nil,
                headers: [
                    ("accept", "application/json"), ("content-type", "application/json"), ("host", seen.authority ?? ""),
                    ("x-amz-date", "20261127T120000Z"), ("x-amz-security-token", Self.sessionToken),
                ],
                payloadHash: SigV4Signer.hexSHA256(seen.body), timestamp: "20261127T120000Z")
            #expect(authorization == expected)
            #expect(seen.authority == fake.baseURL.replacingOccurrences(of: "http://", with: ""))
        }
    }

    @Test("a non-streaming round trip in the Messages shape; model, stream and metadata are not sent to Bedrock")
    func roundTrip() async throws {
        try await withFake(try await FakeBedrock.start()) { fake in
            let reply = try await LLMHarness.withAdapter(Self.options(fake)) { client in
                try await client.messages(Self.request, headers: [("anthropic-beta", "token-efficient-tools-2025-02-19, output-128k-2025-02-19")])
            }
            #expect(reply.status == 200, "\(reply.body) — fake refused: \(fake.refused)")
            #expect(reply.header("content-type") == "application/json")
            #expect(reply.jsonValue == FakeBedrock.message)
            let seen = try #require(fake.received.first)
            #expect(seen.path == Self.wirePath)
            #expect(seen.header("x-amz-security-token") == nil)
            #expect((try? fake.expectedAuthorization(for: seen).get()) == seen.header("authorization"))
            #expect(seen.header("authorization")?.contains("SignedHeaders=accept;content-type;host;x-amz-date,") == true)
            #expect(seen.json == [
                "anthropic_version": "bedrock-2023-05-31", "max_tokens": 300, "temperature": .number(0.2), "system": "Be brief.",
                "messages": [["role": "user", "content": "Say hello."]],
                "anthropic_beta": ["token-efficient-tools-2025-02-19", "output-128k-2025-02-19"],
            ])
        }
    }

    @Test("an endpoint with a path (a proxy in front of Bedrock) and a trailing slash: the path as sent is the path signed")
    func endpointWithPath() async throws {
        try await withFake(try await FakeBedrock.start()) { fake in
            let options = LLMHarness.options(.bedrock(
                accessKeyID: Self.accessKeyID, secretAccessKey: Self.secret, sessionToken: nil, region: Self.region, modelID: Self.modelID,
                endpoint: fake.baseURL + "/bedrock-proxy/"))
            let reply = try await LLMHarness.withAdapter(options) { client in try await client.messages(Self.request) }
            #expect(reply.status == 200, "\(reply.body) — fake refused: \(fake.refused)")
            #expect(fake.received.first?.path == "/bedrock-proxy" + Self.wirePath)
            #expect(fake.refused.isEmpty)
        }
    }

    @Test("an endpoint path with a percent-encoded character is signed as it goes on the wire")
    func endpointWithEncodedPath() async throws {
        try await withFake(try await FakeBedrock.start()) { fake in
            let options = LLMHarness.options(.bedrock(
                accessKeyID: Self.accessKeyID, secretAccessKey: Self.secret, sessionToken: nil, region: Self.region, modelID: Self.modelID,
                endpoint: fake.baseURL + "/team%20a"))
            let reply = try await LLMHarness.withAdapter(options) { client in try await client.messages(Self.request) }
            #expect(fake.received.first?.path == "/team%20a" + Self.wirePath)
            #expect(reply.status == 200, "\(reply.body) — fake refused: \(fake.refused)")
            #expect(fake.refused.isEmpty)
        }
    }

    @Test("a stream is unwrapped into Messages SSE events in order, whatever the frame boundaries")
    func streamingUnwrapped() async throws {
        try await withFake(try await FakeBedrock.start()) { fake in
            fake.script([.gatedStream])
            var body = Self.request.object!
            body["stream"] = true
            try await LLMHarness.withAdapter(Self.options(fake)) { client in
                var stream = try await client.stream(.object(body))
                #expect(stream.status == 200)
                #expect(stream.headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true)
                // message_start arrives while Bedrock still holds the second half of the next frame.
                let first = try #require(try await stream.next())
                #expect(first.event == "message_start")
                #expect(first.data == FakeBedrock.streamEvents[0])
                fake.gate.open()
                let events = [first] + (try await stream.rest())
                #expect(stream.leftover.isEmpty)
                #expect(events.map(\.event) == [
                    "message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta",
                    "content_block_stop", "message_delta", "message_stop",
                ])
                #expect(events.map(\.data) == FakeBedrock.streamEvents.map(Optional.some))
                #expect(SSEParser.rebuildContent(events) == [["type": "text", "text": .string(FakeBedrock.text)]])
            }
            let seen = try #require(fake.received.first)
            #expect(seen.path == "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke-with-response-stream")
            #expect(seen.header("accept") == "application/vnd.amazon.eventstream")
            #expect(seen.json?["stream"] == nil)
            #expect(fake.refused.isEmpty)
        }
    }

    @Test("ThrottlingException: 429 rate_limit_error after the retries")
    func throttling() async throws {
        try await withFake(try await FakeBedrock.start()) { fake in
            fake.script(Array(repeating: .exception(status: 429, type: "ThrottlingException", message: "Too many requests, please wait before trying again."), count: 5))
            var options = Self.options(fake)
            options.maxRetries = 2
            let reply = try await LLMHarness.withAdapter(options) { client in try await client.messages(Self.request) }
            #expect(reply.status == 429, "\(reply.body)")
            #expect(reply.errorType == "rate_limit_error")
            #expect(reply.errorMessage?.contains("Too many requests") == true)
            #expect(fake.attempts == 3)
            // Each attempt is signed afresh and accepted by the signature check.
            #expect(fake.refused.isEmpty)
        }
    }

    @Test("ThrottlingException once, then the answer: 200 after one retry")
    func throttlingThenSuccess() async throws {
        try await withFake(try await FakeBedrock.start()) { fake in
            fake.script([.exception(status: 429, type: "ThrottlingException", message: "Too many requests, please wait before trying again.")])
            let reply = try await LLMHarness.withAdapter(Self.options(fake)) { client in try await client.messages(Self.request) }
            #expect(reply.status == 200, "\(reply.body)")
            #expect(reply.jsonValue == FakeBedrock.message)
            #expect(fake.attempts == 2)
        }
    }

    @Test("ValidationException: 400 invalid_request_error, not retried")
    func validation() async throws {
        try await withFake(try await FakeBedrock.start()) { fake in
            fake.script([.exception(status: 400, type: "ValidationException", message: "messages: roles must alternate between \"user\" and \"assistant\"")])
            let reply = try await LLMHarness.withAdapter(Self.options(fake)) { client in try await client.messages(Self.request) }
            #expect(reply.status == 400, "\(reply.body)")
            #expect(reply.errorType == "invalid_request_error")
            #expect(reply.errorMessage?.contains("roles must alternate") == true)
            #expect(fake.attempts == 1)
        }
    }

    @Test("ServiceUnavailableException: 529 overloaded_error")
    func serviceUnavailable() async throws {
        try await withFake(try await FakeBedrock.start()) { fake in
            fake.script(Array(repeating: .exception(status: 503, type: "ServiceUnavailableException", message: "Service is temporarily unable to handle the request."), count: 5))
            var options = Self.options(fake)
            options.maxRetries = 1
            let reply = try await LLMHarness.withAdapter(options) { client in try await client.messages(Self.request) }
            #expect(reply.status == 529, "\(reply.body)")
            #expect(reply.errorType == "overloaded_error")
            #expect(fake.attempts == 2)
        }
    }

    @Test("a wrong secret: the fake's signature check refuses it, and the client gets 502 about the adapter's credentials")
    func badSignature() async throws {
        try await withFake(try await FakeBedrock.start()) { fake in
            let wrongSecret = "not-the-right-secret-access-key-000000000"
            let reply = try await LLMHarness.withAdapter(Self.options(fake, secret: wrongSecret)) { client in try await client.messages(Self.request) }
            #expect(reply.status == 502, "\(reply.body)")
            #expect(reply.errorType == "api_error")
            #expect(reply.errorMessage?.contains("credentials") == true)
            #expect(reply.errorMessage?.contains("InvalidSignatureException") == true)
            #expect(!reply.body.contains(wrongSecret))
            #expect(fake.refused.count == 1)
            #expect(fake.refused.first?.hasPrefix("InvalidSignatureException: The request signature we calculated does not match") == true)
            #expect(fake.attempts == 1)
        }
    }

    @Test("a missing session token is refused by Bedrock (UnrecognizedClientException) and reported as 502")
    func missingSessionToken() async throws {
        try await withFake(try await FakeBedrock.start(sessionToken: Self.sessionToken)) { fake in
            let reply = try await LLMHarness.withAdapter(Self.options(fake, sessionToken: nil)) { client in try await client.messages(Self.request) }
            #expect(reply.status == 502, "\(reply.body)")
            #expect(reply.errorMessage?.contains("credentials") == true)
            #expect(fake.refused.first?.hasPrefix("UnrecognizedClientException") == true)
        }
    }

    @Test("an exception frame mid-stream: the stream ends with an error event of type rate_limit_error")
    func exceptionFrameMidStream() async throws {
        try await withFake(try await FakeBedrock.start()) { fake in
            fake.script([.exceptionFrame(type: "throttlingException", message: "Too many tokens, please wait before trying again.", deltaInSameChunk: false)])
            var body = Self.request.object!
            body["stream"] = true
            try await LLMHarness.withAdapter(Self.options(fake)) { client in
                var stream = try await client.stream(.object(body))
                #expect(stream.status == 200)
                let first = try #require(try await stream.next())
                let second = try #require(try await stream.next())
                #expect([first.event, second.event] == ["message_start", "content_block_start"])
                fake.gate.open()
                let rest = try await stream.rest()
                #expect(rest.map(\.event) == ["error"])
                #expect(rest.last?.data?["type"] == "error")
                #expect(rest.last?.data?["error"]?["type"] == "rate_limit_error")
                #expect(rest.last?.data?["error"]?["message"]?.string?.contains("Too many tokens") == true)
            }
        }
    }

    @Test("events that arrive in the same chunk as an exception frame still reach the client before the error")
    func eventsBeforeExceptionFrameKept() async throws {
        try await withFake(try await FakeBedrock.start()) { fake in
            fake.script([.exceptionFrame(type: "throttlingException", message: "Too many tokens, please wait before trying again.", deltaInSameChunk: true)])
            var body = Self.request.object!
            body["stream"] = true
            try await LLMHarness.withAdapter(Self.options(fake)) { client in
                var stream = try await client.stream(.object(body))
                let first = try #require(try await stream.next())
                let second = try #require(try await stream.next())
                #expect([first.event, second.event] == ["message_start", "content_block_start"])
                fake.gate.open()
                let rest = try await stream.rest()
                #expect(rest.map(\.event) == ["content_block_delta", "error"], "the delta Bedrock sent before the exception was dropped")
                #expect(rest.last?.data?["error"]?["type"] == "rate_limit_error")
            }
        }
    }

    /// A streamed call whose upstream sent message_start and half a frame in one write, then
    /// (once the gate opens) whatever its script says: every event the client got.
    static func eventsAroundAHalfFrame(_ fake: FakeBedrock) async throws -> [SSEEvent] {
        var body = Self.request.object!
        body["stream"] = true
        return try await LLMHarness.withAdapter(Self.options(fake)) { client in
            var stream = try await client.stream(.object(body))
            // message_start came in the same write as the half frame: the adapter holds that half now.
            let first = try #require(try await stream.next())
            fake.gate.open()
            return [first] + (try await stream.rest())
        }
    }

    @Test("a stream that ends in the middle of a frame ends with one error event")
    func streamEndsMidFrame() async throws {
        try await withFake(try await FakeBedrock.start()) { fake in
            fake.script([.endMidFrame])
            let events = try await Self.eventsAroundAHalfFrame(fake)
            #expect(events.map(\.event) == ["message_start", "error"])
            #expect(events.last?.data?["error"]?["type"] == "api_error")
        }
    }

    @Test("a connection dropped in the middle of a frame ends the stream with exactly one error event")
    func connectionDropsMidFrame() async throws {
        try await withFake(try await FakeBedrock.start()) { fake in
            fake.script([.dropMidFrame])
            let events = try await Self.eventsAroundAHalfFrame(fake)
            #expect(events.first?.event == "message_start")
            #expect(events.last?.event == "error")
            #expect(events.filter { $0.event == "error" }.count == 1, "events: \(events.map(\.raw))")
        }
    }

    @Test("GET /healthz names the Bedrock backend and model")
    func health() async throws {
        try await withFake(try await FakeBedrock.start()) { fake in
            let health = try await LLMHarness.withAdapter(Self.options(fake)) { client in try await client.send(.GET, "/healthz", headers: [], body: nil) }
            #expect(health.status == 200)
            #expect(health.jsonValue?["backend"] == "bedrock")
            #expect(health.jsonValue?["model"] == .string(Self.modelID))
            #expect(!health.body.contains(Self.secret))
        }
    }
}
