import Agent0
import Foundation
import SwitchboardJSON
import Testing

/// The tool loop with a scripted model and real MCP servers behind the real gateway: the
/// round cap, tool errors fed back to the model, and tool names that clash across connections.
@Suite("agent0 tool loop")
struct ToolLoopTests {
    /// Every `tool_use` id in a Messages request's history has its `tool_result` in the next message.
    static func unansweredToolUses(_ request: JSONValue) -> [String] {
        let messages = request["messages"]?.array ?? []
        var missing: [String] = []
        for (i, message) in messages.enumerated() where message["role"]?.string == "assistant" {
            let uses = (message["content"]?.array ?? []).filter { $0["type"]?.string == "tool_use" }.compactMap { $0["id"]?.string }
            let next = i + 1 < messages.count ? messages[i + 1]["content"]?.array ?? [] : []
            let answered = Set(next.filter { $0["type"]?.string == "tool_result" }.compactMap { $0["tool_use_id"]?.string })
            missing += uses.filter { !answered.contains($0) }
        }
        return missing
    }

    @Test("a model that never stops asking for tools: the turn ends after maxRounds model calls (maxRounds - 1 tool runs) with a message saying so",
          arguments: [nil, 3] as [Int?])
    func roundCap(maxRounds: Int?) async throws {
        let rounds = maxRounds ?? Agent0Options().maxRounds
        if maxRounds == nil { #expect(rounds == 8, "the default cap is 8 model calls per turn") }
        let options = Agent0Stack.Options(
            mcp: [.init(name: "alpha", tools: ["ping"])],
            llm: { call, request in
                // After the cap, the next turn's first call gets a plain answer.
                if request.lastMessageBlocks.contains(where: { $0["text"]?.string == "and now?" }) { return ScriptedLLM.text("Done.") }
                return ScriptedLLM.toolUse([(id: "toolu_\(call)", name: "ping", input: ["n": .number(Double(call))])], text: "Round \(call).")
            },
            maxRounds: maxRounds)
        try await withAgent0Stack(options) { stack in
            let browser = stack.browser()
            let alice = try await stack.signIn(browser)
            let answer = try await stack.chat(browser, alice, "ping forever")
            #expect(answer.status == 200, "\(answer)")
            let turn = try #require(answer.jsonValue)

            #expect(stack.llm.requests.count == rounds, "exactly \(rounds) model calls")
            let alpha = try #require(stack.mcp["alpha"])
            #expect(alpha.toolCalls.count == rounds - 1, "the last round's tool calls are not run")
            #expect(turn["tool_calls"]?.array?.count == rounds - 1)
            #expect(turn["tool_calls"]?.array?.allSatisfy { $0["is_error"]?.bool == false && $0["connection"]?.string == "alpha" } == true)
            let message = try #require(turn["message"]?.string)
            #expect(message.contains("at most \(rounds) rounds"), "\(message)")
            #expect(message.contains("Round \(rounds)."), "what the model said in the last round is kept")

            // Each round's request carries the previous round's result.
            for (n, request) in stack.llm.requests.enumerated().dropFirst() {
                let results = request.lastMessageBlocks.filter { $0["type"]?.string == "tool_result" }
                #expect(results.compactMap { $0["tool_use_id"]?.string } == ["toolu_\(n)"])
                #expect(results.first?["content"]?.string == "alpha ran ping")
            }

            // The next turn's context has no tool_use left without its tool_result.
            let next = try await stack.chat(browser, alice, "and now?")
            #expect(next.status == 200, "\(next)")
            let request = try #require(stack.llm.requests.last)
            #expect(Self.unansweredToolUses(request).isEmpty, "\(request.encodedString)")
            #expect(stack.llm.requests.count == rounds + 1)
        }
    }

    @Test("a tool error (todo0's isError result, an unknown tool) goes back to the model as a tool_result with is_error: true; a success without it")
    func toolErrorFedBack() async throws {
        let missingID = 987_654
        let options = Agent0Stack.Options(
            todo0: true,
            llm: { call, _ in
                call == 1
                    ? ScriptedLLM.toolUse([
                        (id: "toolu_ok", name: "get-todos", input: [:]),
                        (id: "toolu_missing", name: "toggle-todo", input: ["id": .number(Double(missingID))]),
                        (id: "toolu_unknown", name: "no-such-tool", input: [:]),
                    ])
                    : ScriptedLLM.text("Two of those failed.")
            })
        try await withAgent0Stack(options) { stack in
            let browser = stack.browser()
            let alice = try await stack.signIn(browser)
            let answer = try await stack.chat(browser, alice, "toggle todo \(missingID)")
            #expect(answer.status == 200, "\(answer)")
            #expect(stack.llm.requests.count == 2)

            // The model saw todo0's tools, through the gateway.
            let first = try #require(stack.llm.requests.first)
            #expect(Set(first.toolNames).isSuperset(of: ["get-todos", "toggle-todo"]), "\(first.toolNames)")

            // The second call carries one tool_result per tool_use, in order.
            let second = try #require(stack.llm.requests.last)
            let results = second.lastMessageBlocks
            #expect(second["messages"]?.array?.last?["role"]?.string == "user")
            #expect(results.compactMap { $0["tool_use_id"]?.string } == ["toolu_ok", "toolu_missing", "toolu_unknown"])
            #expect(results.allSatisfy { $0["type"]?.string == "tool_result" })
            #expect(results[0]["is_error"] == nil, "a success carries no is_error: \(results[0].encodedString)")
            #expect(results[1]["is_error"]?.bool == true, "\(results[1].encodedString)")
            #expect(results[1]["content"]?.string?.contains("\(missingID)") == true, "todo0's own sentence: \(results[1].encodedString)")
            #expect(results[2]["is_error"]?.bool == true, "\(results[2].encodedString)")
            #expect(results[2]["content"]?.string?.contains("no-such-tool") == true)

            // The page's chips say the same.
            let calls = try #require(answer.jsonValue?["tool_calls"]?.array)
            #expect(calls.map { $0["is_error"]?.bool } == [false, true, true])
            #expect(calls[1]["connection"]?.string == "todo0")
            #expect(calls[1]["result"]?["isError"]?.bool == true)
            // toggle-todo needs mcp:tools:manage: the gateway widened the access for that call.
            #expect(calls[1]["step_up"]?["scopes"]?.array?.contains("mcp:tools:manage") == true, "\(calls[1].encodedString)")
            #expect(calls[0]["step_up"] == nil)
        }
    }

    @Test("two connections offering the same tool name: the model sees {connection}__{tool}, and a call reaches that connection only")
    func clashRenaming() async throws {
        let options = Agent0Stack.Options(
            mcp: [.init(name: "alpha", tools: ["search", "alpha-only"]), .init(name: "beta", tools: ["search", "beta-only"])],
            llm: { call, request in
                // Turn 1 calls beta's search, turn 2 alpha's; each ends after the result.
                if request.lastMessageBlocks.contains(where: { $0["type"]?.string == "tool_result" }) { return ScriptedLLM.text("Found it.") }
                let text = request.lastMessageBlocks.compactMap { $0["text"]?.string }.joined()
                let name = text.contains("beta") ? "beta__search" : "alpha__search"
                return ScriptedLLM.toolUse([(id: "toolu_\(call)", name: name, input: ["q": "x"])])
            })
        try await withAgent0Stack(options) { stack in
            let browser = stack.browser()
            let alice = try await stack.signIn(browser)
            let alpha = try #require(stack.mcp["alpha"])
            let beta = try #require(stack.mcp["beta"])

            let answer = try await stack.chat(browser, alice, "search at beta")
            #expect(answer.status == 200, "\(answer)")
            let offered = try #require(stack.llm.requests.first).toolNames
            #expect(Set(offered) == ["alpha__search", "beta__search", "alpha-only", "beta-only"], "\(offered)")
            #expect(offered.count == 4)

            #expect(beta.toolCalls.map(\.name) == ["search"], "beta ran its own tool name")
            #expect(beta.toolCalls.first?.arguments == ["q": "x"])
            #expect(alpha.toolCalls.isEmpty, "alpha received no call")
            let call = try #require(answer.jsonValue?["tool_calls"]?.array?.first)
            #expect(call["name"]?.string == "beta__search")
            #expect(call["connection"]?.string == "beta")
            #expect(call["tool"]?.string == "search")
            #expect(stack.llm.requests.last?.lastMessageBlocks.first?["content"]?.string == "beta ran search")

            let again = try await stack.chat(browser, alice, "search at alpha")
            #expect(again.status == 200, "\(again)")
            #expect(alpha.toolCalls.map(\.name) == ["search"])
            #expect(beta.toolCalls.count == 1)
            #expect(again.jsonValue?["tool_calls"]?.array?.first?["connection"]?.string == "alpha")
        }
    }
}
