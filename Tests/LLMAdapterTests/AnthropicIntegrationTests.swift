import Foundation
import LLMAdapter
import SwitchboardJSON
import Testing

/// `switchboard llm` in front of a fake Anthropic API on loopback.
@Suite("LLM adapter → Anthropic API (integration)", .timeLimit(.minutes(1)))
struct AnthropicIntegrationTests {
    static let upstreamKey = "sk-ant-api03-fake-upstream-key"

    static func options(_ fake: FakeAnthropic, model: String? = nil, key: String = upstreamKey) -> LLMAdapterOptions {
        LLMHarness.options(.anthropic(apiKey: key, baseURL: fake.baseURL, model: model))
    }

    static let request: JSONValue = [
        "model": "claude-3-5-haiku-20241022", "max_tokens": 256, "temperature": .number(0.5),
        "system": "You are terse.", "metadata": ["user_id": "user-42"],
        "messages": [["role": "user", "content": "Say hello."]],
    ]

    @Test("a non-streaming request is forwarded with the adapter's key, the client's version and beta, and the model override")
    func forwardsNonStreaming() async throws {
        try await withFake(try await FakeAnthropic.start(apiKey: Self.upstreamKey)) { fake in
            let reply = try await LLMHarness.withAdapter(Self.options(fake, model: "claude-sonnet-4-5-20250929")) { client in
                try await client.messages(Self.request, headers: [("anthropic-version", "2023-06-01"), ("anthropic-beta", "prompt-caching-2024-07-31,tools-2024-04-04")])
            }
            #expect(reply.status == 200, "\(reply.body)")
            #expect(reply.header("content-type") == "application/json")
            #expect(reply.header("request-id")?.isEmpty == false)
            #expect(reply.jsonValue?["type"] == "message")
            #expect(reply.jsonValue?["content"]?.array?.first?["text"]?.string == FakeAnthropic.text)
            // The upstream's own answer, model included, reaches the client unchanged.
            #expect(reply.jsonValue?["model"] == "claude-sonnet-4-5-20250929")

            #expect(fake.attempts == 1)
            let seen = try #require(fake.received.first)
            #expect(seen.method == "POST")
            #expect(seen.path == "/v1/messages")
            #expect(seen.header("x-api-key") == Self.upstreamKey)
            #expect(seen.header("anthropic-version") == "2023-06-01")
            #expect(seen.header("anthropic-beta") == "prompt-caching-2024-07-31,tools-2024-04-04")
            #expect(seen.header("content-type") == "application/json")
            var expected = Self.request.object!
            expected["model"] = "claude-sonnet-4-5-20250929"
            #expect(seen.json == .object(expected), "every field the client sent is forwarded; only the model is replaced")
        }
    }

    @Test("without an override the client's model is kept, and anthropic-version defaults to 2023-06-01")
    func keepsModelAndDefaultsVersion() async throws {
        try await withFake(try await FakeAnthropic.start(apiKey: Self.upstreamKey)) { fake in
            let reply = try await LLMHarness.withAdapter(Self.options(fake)) { client in try await client.messages(Self.request) }
            #expect(reply.status == 200, "\(reply.body)")
            let seen = try #require(fake.received.first)
            #expect(seen.header("anthropic-version") == "2023-06-01")
            #expect(seen.header("anthropic-beta") == nil)
            #expect(seen.json == Self.request)
            #expect(reply.jsonValue?["model"] == "claude-3-5-haiku-20241022")
        }
    }

    @Test("the agent needs no Anthropic key: the adapter's key is injected and the agent's key for the adapter never goes upstream")
    func agentNeedsNoAnthropicKey() async throws {
        try await withFake(try await FakeAnthropic.start(apiKey: Self.upstreamKey)) { fake in
            var options = Self.options(fake)
            options.apiKey = "sb-adapter-key-1234"
            let (viaHeader, viaBearer) = try await LLMHarness.withAdapter(options) { client in
                let a = try await client.messages(Self.request, headers: [("x-api-key", "sb-adapter-key-1234")])
                let b = try await client.messages(Self.request, headers: [("authorization", "Bearer sb-adapter-key-1234")])
                return (a, b)
            }
            #expect(viaHeader.status == 200, "\(viaHeader.body)")
            #expect(viaBearer.status == 200, "\(viaBearer.body)")
            #expect(fake.attempts == 2)
            for seen in fake.received {
                #expect(seen.values("x-api-key") == [Self.upstreamKey])
                #expect(seen.header("authorization") == nil)
                for field in seen.headers {
                    #expect(!field.value.contains("sb-adapter-key-1234"), "the adapter key leaked upstream in \(field.name)")
                }
                #expect(!seen.bodyText.contains("sb-adapter-key-1234"))
            }
        }
    }

    @Test("a stream is passed through event by event: the first event reaches the client before the upstream finishes")
    func streamsAsItArrives() async throws {
        try await withFake(try await FakeAnthropic.start(apiKey: Self.upstreamKey)) { fake in
            fake.script([.gatedStream])
            var body = Self.request.object!
            body["stream"] = true
            try await LLMHarness.withAdapter(Self.options(fake)) { client in
                var stream = try await client.stream(.object(body), headers: [("anthropic-version", "2023-06-01")])
                #expect(stream.status == 200)
                #expect(stream.headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true)
                #expect(stream.headers.first(name: "request-id")?.isEmpty == false)

                let first = try #require(try await stream.next())
                #expect(first.event == "message_start")
                // The upstream is still held at its gate: nothing after message_start was written yet.
                #expect(fake.finishedStreams.withLock { $0 } == 0)
                #expect(fake.gate.arrivals.withLock { $0 } == 1)

                fake.gate.open()
                let rest = try await stream.rest()
                #expect(fake.finishedStreams.withLock { $0 } == 1)
                #expect(stream.leftover.isEmpty)
                let names = ([first] + rest).map(\.event)
                #expect(names == [
                    "message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "content_block_delta",
                    "content_block_delta", "content_block_stop", "message_delta", "message_stop",
                ])
                // Byte for byte what the upstream wrote.
                #expect(String(decoding: stream.raw, as: UTF8.self) == FakeAnthropic.events(model: "claude-3-5-haiku-20241022").joined())
                let text = rest.compactMap { $0.data?["delta"]?["text"]?.string }.joined()
                #expect(text == FakeAnthropic.text)
            }
            let seen = try #require(fake.received.first)
            #expect(seen.header("accept") == "text/event-stream")
            #expect(seen.json?["stream"] == true)
        }
    }

    @Test("429 twice then 200: the client gets the 200 and the upstream saw three attempts")
    func retriesRateLimits() async throws {
        try await withFake(try await FakeAnthropic.start(apiKey: Self.upstreamKey)) { fake in
            fake.script([
                .error(status: 429, type: "rate_limit_error", message: "Number of request tokens has exceeded your per-minute rate limit", retryAfter: "0"),
                .error(status: 429, type: "rate_limit_error", message: "Number of request tokens has exceeded your per-minute rate limit", retryAfter: "0"),
            ])
            let reply = try await LLMHarness.withAdapter(Self.options(fake)) { client in try await client.messages(Self.request) }
            #expect(reply.status == 200, "\(reply.body)")
            #expect(reply.jsonValue?["type"] == "message")
            #expect(fake.attempts == 3)
            // Every attempt is the same request.
            let bodies = Set(fake.received.map(\.bodyText))
            #expect(bodies.count == 1)
        }
    }

    @Test("a 500 is retried too")
    func retriesServerErrors() async throws {
        try await withFake(try await FakeAnthropic.start(apiKey: Self.upstreamKey)) { fake in
            fake.script([.error(status: 500, type: "api_error", message: "Internal server error")])
            let reply = try await LLMHarness.withAdapter(Self.options(fake)) { client in try await client.messages(Self.request) }
            #expect(reply.status == 200, "\(reply.body)")
            #expect(fake.attempts == 2)
        }
    }

    @Test("529 beyond the retries: the client gets 529 overloaded_error with retry-after")
    func overloadedAfterRetries() async throws {
        try await withFake(try await FakeAnthropic.start(apiKey: Self.upstreamKey)) { fake in
            fake.script(Array(repeating: .error(status: 529, type: "overloaded_error", message: "Overloaded", retryAfter: "0"), count: 5))
            var options = Self.options(fake)
            options.maxRetries = 2
            let reply = try await LLMHarness.withAdapter(options) { client in try await client.messages(Self.request) }
            #expect(reply.status == 529, "\(reply.body)")
            #expect(reply.errorType == "overloaded_error")
            #expect(reply.errorMessage == "Overloaded")
            #expect(reply.header("retry-after") == "0")
            #expect(reply.header("request-id")?.isEmpty == false)
            #expect(fake.attempts == 3)
        }
    }

    @Test("a 429 on a streaming request is passed straight through (one attempt)")
    func streamingRateLimitIsNotRetried() async throws {
        try await withFake(try await FakeAnthropic.start(apiKey: Self.upstreamKey)) { fake in
            fake.script([.error(status: 429, type: "rate_limit_error", message: "Slow down", retryAfter: "7")])
            var body = Self.request.object!
            body["stream"] = true
            let reply = try await LLMHarness.withAdapter(Self.options(fake)) { client in try await client.messages(.object(body)) }
            #expect(reply.status == 429, "\(reply.body)")
            #expect(reply.errorType == "rate_limit_error")
            #expect(reply.errorMessage == "Slow down")
            #expect(reply.header("retry-after") == "7")
            #expect(reply.header("content-type") == "application/json")
            #expect(fake.attempts == 1)
        }
    }

    @Test("the upstream refusing the adapter's key is a 502 api_error for the client, and the message does not show the key")
    func upstreamAuthenticationFailure() async throws {
        try await withFake(try await FakeAnthropic.start(apiKey: Self.upstreamKey)) { fake in
            let wrongKey = "sk-ant-api03-revoked-key-0000"
            let reply = try await LLMHarness.withAdapter(Self.options(fake, key: wrongKey)) { client in try await client.messages(Self.request) }
            #expect(reply.status == 502, "\(reply.body)")
            #expect(reply.errorType == "api_error")
            #expect(reply.errorMessage?.contains("ANTHROPIC_API_KEY") == true)
            #expect(!reply.body.contains(wrongKey))
            #expect(!reply.body.contains(Self.upstreamKey))
            #expect(fake.attempts == 1, "a refused key is not retried")
            #expect(fake.received.first?.header("x-api-key") == wrongKey)
        }
    }

    @Test("a 400 from upstream reaches the client as 400 with the upstream's message")
    func upstreamInvalidRequest() async throws {
        try await withFake(try await FakeAnthropic.start(apiKey: Self.upstreamKey)) { fake in
            let message = "messages.0.content.0.image.source.base64.data: The image was specified using the image/png media type, but does not appear to be a valid png image"
            fake.script([.error(status: 400, type: "invalid_request_error", message: message)])
            let reply = try await LLMHarness.withAdapter(Self.options(fake)) { client in try await client.messages(Self.request) }
            #expect(reply.status == 400, "\(reply.body)")
            #expect(reply.jsonValue == ["type": "error", "error": ["type": "invalid_request_error", "message": .string(message)]])
            #expect(fake.attempts == 1)
        }
    }

    @Test("an unreachable upstream (nothing listens) is a 502 api_error")
    func unreachableUpstream() async throws {
        let reply = try await LLMHarness.withClosedPort { port in
            var options = LLMHarness.options(.anthropic(apiKey: Self.upstreamKey, baseURL: "http://127.0.0.1:\(port)", model: nil))
            options.maxRetries = 1
            return try await LLMHarness.withAdapter(options) { client in try await client.messages(Self.request) }
        }
        #expect(reply.status == 502, "\(reply.body)")
        #expect(reply.errorType == "api_error")
        #expect(reply.jsonValue?["type"] == "error")
        #expect(reply.errorMessage?.contains("unreachable") == true)
    }

    @Test("an upstream that never answers: 504 after the upstream timeout (1 s)")
    func hangingUpstreamTimesOut() async throws {
        try await withFake(try await FakeAnthropic.start(apiKey: Self.upstreamKey)) { fake in
            fake.script([.hang, .hang, .hang])
            var options = Self.options(fake)
            options.upstreamTimeout = .seconds(1)
            let started = ContinuousClock.now
            let reply = try await LLMHarness.withAdapter(options) { client in
                let reply = try await client.messages(Self.request)
                fake.hangs.releaseAll()
                return reply
            }
            let elapsed = ContinuousClock.now - started
            #expect(reply.status == 504, "\(reply.body)")
            #expect(reply.errorType == "timeout_error")
            #expect(elapsed < .seconds(10))
            #expect(fake.attempts == 1, "a timeout may have reached the model: not retried")
        }
    }

    @Test("an upstream that sends the head of its answer and then stalls: 504 after the upstream timeout (1 s)")
    func stalledBodyTimesOut() async throws {
        try await withFake(try await FakeAnthropic.start(apiKey: Self.upstreamKey)) { fake in
            fake.script([.stallBody])
            var options = Self.options(fake)
            options.upstreamTimeout = .seconds(1)
            options.idleTimeout = .seconds(40)
            let started = ContinuousClock.now
            let reply = try await LLMHarness.withAdapter(options) { client in
                // The client gives up after 10 s; the adapter promises 504 after 1 s.
                let reply = try? await client.send(.POST, "/v1/messages", body: Array(Self.request.encoded()), deadline: .seconds(10))
                fake.hangs.releaseAll()
                return reply
            }
            let elapsed = ContinuousClock.now - started
            #expect(reply?.status == 504, "\(reply?.body ?? "no answer within 10 s")")
            #expect(reply?.errorType == "timeout_error")
            #expect(elapsed < .seconds(10))
        }
    }

    @Test("the upstream dropping the connection mid-stream: the client's stream ends with an error event")
    func midStreamClose() async throws {
        try await withFake(try await FakeAnthropic.start(apiKey: Self.upstreamKey)) { fake in
            fake.script([.closeMidStream])
            var body = Self.request.object!
            body["stream"] = true
            try await LLMHarness.withAdapter(Self.options(fake)) { client in
                var stream = try await client.stream(.object(body))
                #expect(stream.status == 200)
                // The upstream's half event reached the client; now the upstream connection drops.
                #expect(try await stream.readUntil(rawContains: FakeAnthropic.partialEvent))
                fake.gate.open()
                let events = try await stream.rest()
                #expect(events.map(\.event).prefix(4) == ["message_start", "content_block_start", "ping", "content_block_delta"])
                let last = try #require(events.last)
                #expect(last.event == "error", "the client received: \(String(decoding: stream.raw, as: UTF8.self).debugDescription)")
                #expect(last.data?["type"] == "error")
                #expect(last.data?["error"]?["type"] == "api_error")
                #expect(events.filter { $0.event == "error" }.count == 1)
                #expect(!events.contains { $0.event == "message_stop" })
            }
        }
    }

    @Test("GET /healthz and /v1/models name the Anthropic backend and its model")
    func healthNamesBackend() async throws {
        try await withFake(try await FakeAnthropic.start(apiKey: Self.upstreamKey)) { fake in
            try await LLMHarness.withAdapter(Self.options(fake, model: "claude-sonnet-4-5-20250929")) { client in
                let health = try await client.send(.GET, "/healthz", headers: [], body: nil)
                #expect(health.status == 200)
                #expect(health.jsonValue?["status"] == "ok")
                #expect(health.jsonValue?["backend"] == "anthropic")
                #expect(health.jsonValue?["model"] == "claude-sonnet-4-5-20250929")
                #expect(!health.body.contains(Self.upstreamKey))
                let models = try await client.send(.GET, "/v1/models", headers: [], body: nil)
                #expect(models.status == 200)
                #expect(models.jsonValue?["data"]?.array?.first?["id"] == "claude-sonnet-4-5-20250929")
            }
            #expect(fake.attempts == 0)
        }
    }
}
