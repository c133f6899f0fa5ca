import NIOCore
import Testing
@testable import LLMAdapter
import SwitchboardJSON

/// The offline backend's answer as Messages SSE events, and its `max_tokens` cut.
@Suite("Offline backend: SSE events and max_tokens")
struct OfflineStreamTests {
    /// One SSE event as the encoder wrote it: `event: <name>\ndata: <json>\n\n`.
    struct Event {
        var name: String
        var data: JSONValue
    }

    static func parse(_ buffer: ByteBuffer) throws -> Event {
        let text = String(buffer: buffer)
        try #require(text.hasPrefix("event: ") && text.hasSuffix("\n\n"), "not one SSE event: \(text)")
        let lines = text.dropLast(2).split(separator: "\n", omittingEmptySubsequences: false)
        try #require(lines.count == 2 && lines[1].hasPrefix("data: "), "not one SSE event: \(text)")
        let data = try #require(JSONValue.parse(Array(lines[1].dropFirst(6).utf8)), "data is not JSON: \(text)")
        return Event(name: String(lines[0].dropFirst(7)), data: data)
    }

    static let title = "prep the demo for the quarterly review, with slides and a dry run"
    static let text = "I'll use `create-todo` to add the todo you asked for, right now."
    static let plan = OfflinePlanner.Plan(
        blocks: [.text(text), .toolUse(id: "toolu_offline_1", name: "create-todo", input: ["title": .string(title), "priority": 2])],
        stopReason: "tool_use")

    static func events(_ plan: OfflinePlanner.Plan = plan) throws -> [Event] {
        try MessageEncoder(id: "msg_test", model: OfflineBackend.modelName, inputTokens: 42, plan: plan).events().map(parse)
    }

    /// Event names with each run of deltas written once as `content_block_delta+`.
    static func shape(_ events: [Event]) -> [String] {
        var out: [String] = []
        for event in events {
            if event.name == "content_block_delta", out.last == "content_block_delta+" { continue }
            out.append(event.name == "content_block_delta" ? "content_block_delta+" : event.name)
        }
        return out
    }

    @Test func eventOrder() throws {
        let events = try Self.events()
        #expect(Self.shape(events) == [
            "message_start", "ping",
            "content_block_start", "content_block_delta+", "content_block_stop",
            "content_block_start", "content_block_delta+", "content_block_stop",
            "message_delta", "message_stop",
        ])
        // Long enough that both blocks really come in several deltas.
        #expect(events.filter { $0.name == "content_block_delta" && $0.data["index"] == 0 }.count > 1)
        #expect(events.filter { $0.name == "content_block_delta" && $0.data["index"] == 1 }.count > 1)
        // Every data's type is its event's name.
        for event in events { #expect(event.data["type"]?.string == event.name) }
    }

    @Test func textDeltasConcatenateToTheText() throws {
        let deltas = try Self.events().filter { $0.name == "content_block_delta" && $0.data["index"] == 0 }
        #expect(deltas.allSatisfy { $0.data["delta"]?["type"] == "text_delta" })
        #expect(deltas.compactMap { $0.data["delta"]?["text"]?.string }.joined() == Self.text)
    }

    @Test func inputJSONDeltasParseToTheInput() throws {
        let deltas = try Self.events().filter { $0.name == "content_block_delta" && $0.data["index"] == 1 }
        #expect(deltas.allSatisfy { $0.data["delta"]?["type"] == "input_json_delta" })
        let json = deltas.compactMap { $0.data["delta"]?["partial_json"]?.string }.joined()
        #expect(JSONValue.parse(Array(json.utf8)) == ["title": .string(Self.title), "priority": 2])
    }

    @Test func blockStartsAndStops() throws {
        let events = try Self.events()
        let starts = events.filter { $0.name == "content_block_start" }
        try #require(starts.count == 2)
        #expect(starts[0].data["index"] == 0)
        #expect(starts[0].data["content_block"] == ["type": "text", "text": ""])
        #expect(starts[1].data["index"] == 1)
        #expect(starts[1].data["content_block"] == ["type": "tool_use", "id": "toolu_offline_1", "name": "create-todo", "input": [:]])
        #expect(events.filter { $0.name == "content_block_stop" }.map { $0.data["index"] } == [0, 1])
    }

    @Test func messageStartAndEnd() throws {
        let events = try Self.events()
        let start = try #require(events.first?.data["message"])
        #expect(start["id"] == "msg_test")
        #expect(start["model"] == .string(OfflineBackend.modelName))
        #expect(start["role"] == "assistant")
        #expect(start["content"] == [])
        #expect(start["stop_reason"] == .null)
        #expect(start["usage"]?["input_tokens"] == 42)
        let delta = try #require(events.first { $0.name == "message_delta" })
        #expect(delta.data["delta"]?["stop_reason"] == "tool_use")
        #expect(delta.data["usage"]?["output_tokens"]?.integer ?? 0 >= 1)
    }

    @Test func streamAndMessageAgree() throws {
        let encoder = MessageEncoder(id: "msg_test", model: OfflineBackend.modelName, inputTokens: 42, plan: Self.plan)
        let json = encoder.json
        #expect(json["content"] == [
            ["type": "text", "text": .string(Self.text)],
            ["type": "tool_use", "id": "toolu_offline_1", "name": "create-todo", "input": ["title": .string(Self.title), "priority": 2]],
        ])
        #expect(json["stop_reason"] == "tool_use")
        let delta = try #require(try Self.events().first { $0.name == "message_delta" })
        #expect(json["usage"]?["output_tokens"] == delta.data["usage"]?["output_tokens"])
    }

    @Test func emptyTextStillHasOneDelta() throws {
        let events = try Self.events(OfflinePlanner.Plan(blocks: [.text("")], stopReason: "end_turn"))
        #expect(Self.shape(events) == ["message_start", "ping", "content_block_start", "content_block_delta+", "content_block_stop", "message_delta", "message_stop"])
    }

    @Test(arguments: ["", "short", "one two three four five six seven eight nine ten", String(repeating: "x", count: 100), "héllo wörld ✓ 🚀 naïve café "])
    func piecesRejoin(_ text: String) {
        let pieces = MessageEncoder.pieces(of: text, size: 8)
        #expect(pieces.joined() == text)
        #expect(!pieces.isEmpty)
        #expect(pieces.allSatisfy { $0.count <= 16 })
    }

    // MARK: - max_tokens

    @Test func maxTokensOneCutsTheAnswer() {
        let fitted = OfflineBackend.fitted(Self.plan, maxTokens: 1)
        #expect(fitted.stopReason == "max_tokens")
        // Four bytes of text and no tool call.
        #expect(fitted.blocks == [.text("I'll")])
    }

    @Test func aToolCallThatDoesNotFitIsDropped() {
        // The text fits, the tool input does not: the call is not sent half-made.
        let textTokens = (Self.text.utf8.count + 3) / 4
        let fitted = OfflineBackend.fitted(Self.plan, maxTokens: textTokens + 2)
        #expect(fitted.stopReason == "max_tokens")
        #expect(fitted.blocks == [.text(Self.text)])
    }

    @Test func enoughTokensChangesNothing() {
        #expect(OfflineBackend.fitted(Self.plan, maxTokens: 1024) == Self.plan)
    }

    @Test func cutKeepsWholeCharacters() {
        // budget 4 bytes: "a" (1) + "é" (2) + the first byte of the second "é".
        let fitted = OfflineBackend.fitted(OfflinePlanner.Plan(blocks: [.text("aééé")], stopReason: "end_turn"), maxTokens: 1)
        #expect(fitted.stopReason == "max_tokens")
        #expect(fitted.blocks == [.text("aé")])
    }

    @Test func streamedReplyFromTheBackend() async throws {
        let request = try MessagesRequest(json: [
            "model": "m", "max_tokens": 1, "stream": true, "messages": [["role": "user", "content": "who are you?"]],
        ])
        guard case .events(let stream) = try await OfflineBackend().respond(to: request, requestID: "r1") else {
            Issue.record("not a stream")
            return
        }
        var events: [Event] = []
        for try await buffer in stream { events.append(try Self.parse(buffer)) }
        #expect(events.first?.data["message"]?["id"] == "msg_r1")
        #expect(events.first { $0.name == "message_delta" }?.data["delta"]?["stop_reason"] == "max_tokens")
        #expect(events.last?.name == "message_stop")
    }

    @Test func wholeReplyFromTheBackend() async throws {
        let request = try MessagesRequest(json: ["model": "m", "max_tokens": 1024, "messages": [["role": "user", "content": "are you Claude?"]]])
        guard case .message(let buffer) = try await OfflineBackend().respond(to: request, requestID: "r2") else {
            Issue.record("not a message")
            return
        }
        let json = try #require(JSONValue.parse(buffer.readableBytesView))
        #expect(json["id"] == "msg_r2")
        #expect(json["type"] == "message")
        #expect(json["stop_reason"] == "end_turn")
        #expect(json["content"]?.array?.first?["text"]?.string?.contains("offline planner") == true)
    }
}
