import Foundation
import LLMAdapter
import SwitchboardJSON
import Testing

/// `switchboard llm` with its default backend, the offline planner: no key, no network.
@Suite("LLM adapter, offline planner (integration)", .timeLimit(.minutes(1)))
struct OfflineIntegrationTests {
    static let tools: JSONValue = [
        [
            "name": "add_todo", "description": "Add a todo item to the user's list",
            "input_schema": ["type": "object", "properties": ["title": ["type": "string", "description": "What to do"]], "required": ["title"]],
        ],
        [
            "name": "list_todos", "description": "List the user's todo items",
            "input_schema": ["type": "object", "properties": [:]],
        ],
    ]

    static let toolRequest: JSONValue = [
        "model": "claude-sonnet-4-5", "max_tokens": 1024, "tools": tools,
        "messages": [["role": "user", "content": "Please add a todo \"buy milk\""]],
    ]

    @Test("the default backend is offline and answers a plain message in the Messages shape")
    func plainMessage() async throws {
        let options = LLMHarness.options()
        #expect(LLMAdapterOptions().backend == .offline)
        let reply = try await LLMHarness.withAdapter(options) { client in
            try await client.messages(["model": "claude-sonnet-4-5", "max_tokens": 200, "messages": [["role": "user", "content": "Who are you?"]]])
        }
        #expect(reply.status == 200, "\(reply.body)")
        #expect(reply.header("content-type") == "application/json")
        let json = try #require(reply.jsonValue)
        #expect(json["type"] == "message")
        #expect(json["role"] == "assistant")
        #expect(json["model"] == "switchboard-offline-planner")
        #expect(json["id"]?.string?.hasPrefix("msg_") == true)
        #expect(json["stop_reason"] == "end_turn")
        #expect(json["stop_sequence"] == .null)
        #expect((json["usage"]?["input_tokens"]?.integer ?? 0) > 0)
        #expect((json["usage"]?["output_tokens"]?.integer ?? 0) > 0)
        let content = try #require(json["content"]?.array)
        #expect(content.count == 1)
        #expect(content.first?["type"] == "text")
        #expect(content.first?["text"]?.string?.contains("offline planner") == true)
    }

    @Test("a tool-use round trip: the offered tool is called with arguments from the sentence, then the tool result is summarised")
    func toolUseRoundTrip() async throws {
        try await LLMHarness.withAdapter(LLMHarness.options()) { client in
            let first = try await client.messages(Self.toolRequest)
            #expect(first.status == 200, "\(first.body)")
            let answer = try #require(first.jsonValue)
            #expect(answer["stop_reason"] == "tool_use")
            let content = try #require(answer["content"]?.array)
            let toolUse = try #require(content.first { $0["type"] == "tool_use" })
            #expect(toolUse["name"] == "add_todo")
            #expect(toolUse["input"] == ["title": "buy milk"])
            let toolUseID = try #require(toolUse["id"]?.string)
            #expect(toolUseID.hasPrefix("toolu_"))

            // The agent ran the tool; it sends the result back.
            var next = Self.toolRequest.object!
            next["messages"] = [
                ["role": "user", "content": "Please add a todo \"buy milk\""],
                ["role": "assistant", "content": .array(content)],
                ["role": "user", "content": [["type": "tool_result", "tool_use_id": .string(toolUseID), "content": #"{"id":3,"title":"buy milk","done":false}"#]]],
            ]
            let second = try await client.messages(.object(next))
            #expect(second.status == 200, "\(second.body)")
            #expect(second.jsonValue?["stop_reason"] == "end_turn")
            let blocks = try #require(second.jsonValue?["content"]?.array)
            #expect(blocks.count == 1)
            #expect(blocks.first?["type"] == "text")
            #expect(blocks.first?["text"] == "#3 buy milk [open]")

            // A failed tool call is reported as such.
            next["messages"] = [
                ["role": "user", "content": "Please add a todo \"buy milk\""],
                ["role": "assistant", "content": .array(content)],
                ["role": "user", "content": [["type": "tool_result", "tool_use_id": .string(toolUseID), "is_error": true, "content": "the list is full"]]],
            ]
            let failed = try await client.messages(.object(next))
            #expect(failed.jsonValue?["content"]?.array?.first?["text"] == "`add_todo` didn't work: the list is full")
        }
    }

    @Test("stream:true yields the Messages event sequence, and its deltas rebuild the non-streaming answer")
    func streamMatchesMessage() async throws {
        try await LLMHarness.withAdapter(LLMHarness.options()) { client in
            let whole = try await client.messages(Self.toolRequest)
            #expect(whole.status == 200)
            var body = Self.toolRequest.object!
            body["stream"] = true
            var stream = try await client.stream(.object(body))
            #expect(stream.status == 200)
            #expect(stream.headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true)
            #expect(stream.headers.first(name: "cache-control") == "no-cache")
            let events = try await stream.rest()
            #expect(stream.leftover.isEmpty)

            // Every event's name is the type inside its data.
            for event in events { #expect(event.type == event.event, "\(event.raw)") }
            // The order, with runs of deltas counted once.
            var shape: [String] = []
            for event in events {
                let label = event.event + (event.data?["index"]?.integer.map { "#\($0)" } ?? "")
                if shape.last != label { shape.append(label) }
            }
            #expect(shape == [
                "message_start", "ping", "content_block_start#0", "content_block_delta#0", "content_block_stop#0",
                "content_block_start#1", "content_block_delta#1", "content_block_stop#1", "message_delta", "message_stop",
            ])
            let start = try #require(events.first?.data?["message"])
            #expect(start["model"] == "switchboard-offline-planner")
            #expect(start["content"] == [])
            #expect(start["stop_reason"] == .null)
            #expect(events.first { $0.event == "content_block_start" && $0.data?["index"] == 1 }?.data?["content_block"]?["input"] == [:])

            #expect(SSEParser.rebuildContent(events) == whole.jsonValue?["content"]?.array)
            let delta = try #require(events.first { $0.event == "message_delta" })
            #expect(delta.data?["delta"]?["stop_reason"] == whole.jsonValue?["stop_reason"])
            #expect(delta.data?["usage"]?["output_tokens"] == whole.jsonValue?["usage"]?["output_tokens"])
        }
    }

    @Test("a long text answer is streamed in several text deltas that rebuild it exactly")
    func longTextStreams() async throws {
        try await LLMHarness.withAdapter(LLMHarness.options()) { client in
            let request: JSONValue = ["model": "m", "max_tokens": 1024, "tools": Self.tools, "messages": [["role": "user", "content": "who are you?"]]]
            let whole = try await client.messages(request)
            var body = request.object!
            body["stream"] = true
            var stream = try await client.stream(.object(body))
            let events = try await stream.rest()
            #expect(events.filter { $0.event == "content_block_delta" }.count > 3)
            #expect(SSEParser.rebuildContent(events) == whole.jsonValue?["content"]?.array)
            #expect(events.last?.event == "message_stop")
        }
    }

    @Test("GET /healthz names the offline backend")
    func health() async throws {
        let health = try await LLMHarness.withAdapter(LLMHarness.options()) { client in try await client.send(.GET, "/healthz", headers: [], body: nil) }
        #expect(health.status == 200)
        #expect(health.header("request-id")?.isEmpty == false)
        #expect(health.jsonValue == ["status": "ok", "backend": "offline", "model": "switchboard-offline-planner"])
    }
}
