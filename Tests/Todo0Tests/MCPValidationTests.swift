import Foundation
import Testing

/// Bad tool arguments are tool errors (`isError: true` with a sentence), never crashes or
/// JSON-RPC errors; bad JSON-RPC is a JSON-RPC error; another user's todo looks missing.
@Suite("MCP validation")
struct MCPValidationTests {
    /// A tool call whose answer must be a tool error mentioning `mentions` (case-insensitive).
    static func expectToolError(
        _ client: MCPClient, _ tool: String, _ arguments: JSON, mentions: [String], sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let answer = try await client.call(tool, arguments)
        #expect(answer.status == 200, "\(tool) \(arguments): \(answer)", sourceLocation: sourceLocation)
        #expect(answer.error == nil, "\(tool) \(arguments) is a JSON-RPC error, not a tool error: \(answer)", sourceLocation: sourceLocation)
        #expect(answer.isError == true, "\(tool) \(arguments): \(answer)", sourceLocation: sourceLocation)
        #expect(answer.result?["structuredContent"] == nil, "\(tool) \(arguments): \(answer)", sourceLocation: sourceLocation)
        let text = answer.text ?? ""
        #expect(!text.isEmpty, "\(tool) \(arguments): no text", sourceLocation: sourceLocation)
        for word in mentions {
            #expect(text.lowercased().contains(word.lowercased()), "\(tool) \(arguments): '\(text)' does not mention '\(word)'", sourceLocation: sourceLocation)
        }
        if client.isStateless { #expect(answer.result?["resultType"] == "complete", sourceLocation: sourceLocation) }
    }

    @Test("create-todo with a bad title", arguments: MCPMode.allCases)
    func badTitles(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(mode, h, token: h.token())
            try await Self.expectToolError(client, "create-todo", [:], mentions: ["title"])
            try await Self.expectToolError(client, "create-todo", ["title": nil], mentions: ["title"])
            try await Self.expectToolError(client, "create-todo", ["title": 42], mentions: ["title"])
            try await Self.expectToolError(client, "create-todo", ["title": ["a"]], mentions: ["title"])
            try await Self.expectToolError(client, "create-todo", ["name": "Buy milk"], mentions: ["title"])
            try await Self.expectToolError(client, "create-todo", ["title": ""], mentions: ["empty"])
            try await Self.expectToolError(client, "create-todo", ["title": "   \n\t  "], mentions: ["empty"])
            try await Self.expectToolError(client, "create-todo", ["title": .string(String(repeating: "x", count: 10 * 1024))], mentions: ["500", "10240"])
            // Arguments that are not an object at all.
            let notObject = try await client.request("tools/call", ["name": "create-todo", "arguments": "Buy milk"])
            #expect(notObject.isError == true, "\(notObject)")
            let noArguments = try await client.request("tools/call", ["name": "create-todo"])
            #expect(noArguments.isError == true, "\(noArguments)")
            // Nothing was stored.
            #expect(try await client.todos().isEmpty)
        }
    }

    @Test("toggle-todo and delete-todo with a bad id", arguments: MCPMode.allCases)
    func badIDs(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(mode, h, token: h.token())
            let kept = try await client.create("Keep me")
            for tool in ["toggle-todo", "delete-todo"] {
                try await Self.expectToolError(client, tool, [:], mentions: ["id"])
                try await Self.expectToolError(client, tool, ["id": nil], mentions: ["id"])
                try await Self.expectToolError(client, tool, ["id": "abc"], mentions: ["id"])
                try await Self.expectToolError(client, tool, ["id": true], mentions: ["id"])
                try await Self.expectToolError(client, tool, ["id": ["x": 1]], mentions: ["id"])
                try await Self.expectToolError(client, tool, ["id": 0], mentions: ["id"])
                try await Self.expectToolError(client, tool, ["id": -1], mentions: ["id"])
                try await Self.expectToolError(client, tool, ["id": -9_007_199_254_740_993.0], mentions: ["id"])
                try await Self.expectToolError(client, tool, ["id": 1.5], mentions: ["id"])
                try await Self.expectToolError(client, tool, ["id": 1e300], mentions: ["id"])
                try await Self.expectToolError(client, tool, ["id": 987_654], mentions: ["987654"])
            }
            // The todo that exists was never touched.
            let todos = try await client.todos()
            #expect(todos.count == 1)
            #expect(todos.first?["id"]?.int == kept)
            #expect(todos.first?["done"] == false)
        }
    }

    @Test("another user's todo is indistinguishable from a missing one", arguments: MCPMode.allCases)
    func otherUsersTodo(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let alice = try await MCPClient.connect(mode, h, token: h.token("user-a"))
            let bob = try await MCPClient.connect(mode, h, token: h.token("user-b"))
            let id = try await alice.create("Alice's secret")
            let doomed = try await alice.create("Alice's other")

            // user-b sees none of user-a's todos.
            let bobList = try await bob.call("get-todos")
            #expect(bobList.result?["structuredContent"]?["todos"] == [])
            #expect(bobList.text?.contains("secret") == false)

            // user-b cannot toggle or delete them; the answers name no title.
            let toggle = try await bob.call("toggle-todo", ["id": .number(Double(id))])
            let delete = try await bob.call("delete-todo", ["id": .number(Double(id))])
            for answer in [toggle, delete] {
                #expect(answer.status == 200)
                #expect(answer.isError == true, "\(answer)")
                #expect(answer.text?.contains("secret") == false)
            }
            let stringID = try await bob.call("toggle-todo", ["id": .string("\(id)")])
            #expect(stringID.isError == true, "\(stringID)")

            // user-a's todos are untouched.
            let aliceTodos = try await alice.todos()
            #expect(aliceTodos.compactMap { $0["id"]?.int } == [id, doomed])
            #expect(aliceTodos.allSatisfy { $0["done"] == false })

            // Once `doomed` really is gone, user-b's answers for it are the same as for a todo of user-a.
            let bobToggleOwned = try await bob.call("toggle-todo", ["id": .number(Double(doomed))])
            let bobDeleteOwned = try await bob.call("delete-todo", ["id": .number(Double(doomed))])
            #expect(try await alice.tool("delete-todo", ["id": .number(Double(doomed))])["isError"] == false)
            let bobToggleMissing = try await bob.call("toggle-todo", ["id": .number(Double(doomed))])
            let bobDeleteMissing = try await bob.call("delete-todo", ["id": .number(Double(doomed))])
            #expect(bobToggleOwned.status == bobToggleMissing.status)
            #expect(bobToggleOwned.result == bobToggleMissing.result, "\(bobToggleOwned) vs \(bobToggleMissing)")
            #expect(bobDeleteOwned.result == bobDeleteMissing.result, "\(bobDeleteOwned) vs \(bobDeleteMissing)")
            // And the same as user-a's own answer for an id that does not exist.
            let aliceMissing = try await alice.call("toggle-todo", ["id": .number(Double(doomed))])
            #expect(aliceMissing.result == bobToggleOwned.result)
        }
    }

    @Test("an unknown tool is JSON-RPC error -32602", arguments: MCPMode.allCases)
    func unknownTool(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(mode, h, token: h.token())
            let answer = try await client.call("launch-rockets", [:])
            #expect(answer.errorCode == -32602, "\(answer)")
            #expect(answer.result == nil)
            #expect(answer.rpc?["id"] == 1)
            let noName = try await client.request("tools/call", ["arguments": [:]])
            #expect(noName.errorCode == -32602, "\(noName)")
        }
    }

    @Test("an unknown method is JSON-RPC error -32601", arguments: MCPMode.allCases)
    func unknownMethod(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(mode, h, token: h.token())
            let answer = try await client.request("resources/list")
            #expect(answer.errorCode == -32601, "\(answer)")
            #expect(answer.rpc?["id"] == 1)
            let made = try await client.request("todos/everything")
            #expect(made.errorCode == -32601, "\(made)")
        }
    }

    @Test("malformed JSON is 400 -32700", arguments: MCPMode.allCases)
    func malformedJSON(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(mode, h, token: h.token())
            for body in [#"{"jsonrpc":"2.0","id":1,"method":"tools/list""#, "", "not json at all", "{'jsonrpc': '2.0'}"] {
                let answer = try await h.postMCP(body, token: client.token, headers: client.headers(for: "tools/list"))
                #expect(answer.status == 400, "\(body): \(answer)")
                #expect(answer.errorCode == -32700, "\(body): \(answer)")
                #expect(answer.rpc?["id"] == .null)
            }
        }
    }

    @Test("a JSON-RPC batch is 400", arguments: MCPMode.allCases)
    func batch(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(mode, h, token: h.token())
            let one: JSON = ["jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": client.envelope(["name": "create-todo", "arguments": ["title": "batched"]])]
            let answer = try await h.postMCP(JSON.array([one, one]).encoded, token: client.token, headers: client.headers(for: "tools/call", name: "create-todo"))
            #expect(answer.status == 400, "\(answer)")
            #expect(answer.error != nil)
            #expect(try await client.todos().isEmpty)
        }
    }

    @Test func notJSONRPCIs400() async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(.session20251125, h, token: h.token())
            for body in [#""hello""#, "42", #"{"id":1,"method":"tools/list"}"#, #"{"jsonrpc":"1.0","id":1,"method":"tools/list"}"#] {
                let answer = try await h.postMCP(body, token: client.token, headers: client.headers(for: "tools/list"))
                #expect(answer.status == 400, "\(body): \(answer)")
                #expect(answer.errorCode == -32600, "\(body): \(answer)")
            }
        }
    }

    @Test func wrongContentTypeAndAcceptAreRefused() async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(.stateless, h, token: h.token())
            let body: JSON = ["jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": client.envelope([:])]
            let text = try await h.postMCP(body.encoded, token: client.token, headers: client.headers(for: "tools/list") + [("Content-Type", "text/plain")])
            #expect(text.status == 415, "\(text)")
            let html = try await h.postMCP(body.encoded, token: client.token, headers: client.headers(for: "tools/list"), accept: "text/html")
            #expect(html.status == 406, "\(html)")
        }
    }
}
