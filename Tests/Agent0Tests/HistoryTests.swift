import Foundation
import SwitchboardJSON
import Testing

/// The conversation belongs to one signed-in session: another user never sees it (nor does the
/// model on their behalf), and it ends with the session.
@Suite("agent0 history per user")
struct HistoryTests {
    /// Replies with a sentence naming the user's last words, so each answer is traceable.
    static let echo: ScriptedLLM.Script = { _, request in
        let said = request.lastMessageBlocks.compactMap { $0["text"]?.string }.joined()
        return ScriptedLLM.text("You said: \(said)")
    }

    static func entries(_ stack: Agent0Stack, _ browser: Browser) async throws -> [JSONValue] {
        let answer = try await browser.get(stack.url("/api/history"))
        #expect(answer.status == 200, "\(answer)")
        #expect(answer.header("Cache-Control") == "no-store")
        return try #require(answer.jsonValue?["entries"]?.array, "\(answer)")
    }

    @Test("alice's conversation is hers: bob's history is empty, bob's model context holds none of it, and each sees only their own")
    func perUser() async throws {
        try await withAgent0Stack(.init(llm: Self.echo)) { stack in
            let aliceBrowser = stack.browser()
            let alice = try await stack.signIn(aliceBrowser, as: "alice")
            let secret = "alice's secret plan " + UUID().uuidString
            let turn = try await stack.chat(aliceBrowser, alice, secret)
            #expect(turn.status == 200, "\(turn)")
            #expect(turn.jsonValue?["message"]?.string == "You said: \(secret)")

            let aliceEntries = try await Self.entries(stack, aliceBrowser)
            #expect(aliceEntries.map { $0["role"]?.string } == ["user", "assistant"])
            #expect(aliceEntries.first?["text"]?.string == secret)
            #expect(aliceEntries.last?["text"]?.string == "You said: \(secret)")
            #expect(aliceEntries.last?["tool_calls"]?.array == [])

            let bobBrowser = stack.browser()
            let bob = try await stack.signIn(bobBrowser, as: "bob")
            #expect(bob.status["subject"] != alice.status["subject"])
            #expect(try await Self.entries(stack, bobBrowser).isEmpty)

            let bobSays = "bob here " + UUID().uuidString
            #expect(try await stack.chat(bobBrowser, bob, bobSays).status == 200)
            let bobRequest = try #require(stack.llm.requests.last)
            #expect(bobRequest["messages"]?.array?.count == 1, "bob's turn starts a conversation of its own")
            #expect(!bobRequest.encodedString.contains(secret), "nothing of alice's reaches the model for bob")
            #expect(bobRequest["system"]?.string?.contains(bob.status["name"]?.string ?? "?") == true, "the model acts for bob")
            #expect(bobRequest["system"]?.string?.contains(alice.status["name"]?.string ?? "?") == false)

            let bobEntries = try await Self.entries(stack, bobBrowser)
            #expect(bobEntries.compactMap { $0["text"]?.string } == [bobSays, "You said: \(bobSays)"])
            #expect(!JSONValue.array(bobEntries).encodedString.contains(secret))
            // And alice's is unchanged by bob's turn.
            #expect(try await Self.entries(stack, aliceBrowser) == aliceEntries)

            // alice's next turn carries her own context (and none of bob's).
            #expect(try await stack.chat(aliceBrowser, alice, "and then?").status == 200)
            let aliceRequest = try #require(stack.llm.requests.last)
            #expect(aliceRequest["messages"]?.array?.count == 3)
            #expect(aliceRequest.encodedString.contains(secret))
            #expect(!aliceRequest.encodedString.contains(bobSays))
        }
    }

    @Test("logging out ends the conversation: after signing in again the history is empty and the model starts afresh")
    func clearedAtLogout() async throws {
        try await withAgent0Stack(.init(llm: Self.echo)) { stack in
            let browser = stack.browser()
            let alice = try await stack.signIn(browser)
            let words = "remember this " + UUID().uuidString
            #expect(try await stack.chat(browser, alice, words).status == 200)
            #expect(try await Self.entries(stack, browser).count == 2)

            let logout = try await stack.post(browser, "/logout", json: "{}", csrf: alice.csrf)
            #expect(logout.status == 200)
            RouteTests.expectError(try await browser.get(stack.url("/api/history")), 401, "not_signed_in")

            let again = try await stack.signIn(browser)
            #expect(try await Self.entries(stack, browser).isEmpty)
            #expect(try await stack.chat(browser, again, "what did I say?").status == 200)
            let request = try #require(stack.llm.requests.last)
            #expect(request["messages"]?.array?.count == 1)
            #expect(!request.encodedString.contains(words))
            #expect(try await Self.entries(stack, browser).compactMap { $0["text"]?.string } == ["what did I say?", "You said: what did I say?"])
        }
    }
}
