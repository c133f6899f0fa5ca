import Foundation
import Testing

/// Every tool in every protocol mode, the handshake of the session revisions and the
/// 2026-07-28 stateless envelope.
@Suite("MCP protocol")
struct MCPProtocolTests {
    @Test("initialize echoes the asked revision and returns a session", arguments: MCPMode.sessions)
    func initializeNegotiates(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let answer = try await h.initialize(version: mode.rawValue, token: h.token())
            #expect(answer.status == 200, "\(answer)")
            #expect(answer.result?["protocolVersion"]?.string == mode.rawValue)
            #expect(answer.result?["serverInfo"]?["name"]?.string == "todo0")
            #expect(answer.result?["capabilities"]?["tools"] != nil)
            #expect(answer.rpc?["id"] == 0)
            let session = try #require(answer.header("Mcp-Session-Id"))
            #expect(!session.isEmpty)
            // Each initialize starts a new session.
            let again = try await h.initialize(version: mode.rawValue, token: h.token())
            #expect(again.header("Mcp-Session-Id") != session)

            let client = MCPClient(harness: h, token: h.token(), version: mode.rawValue, sessionID: session)
            let initialized = try await client.notify("notifications/initialized")
            #expect(initialized.status == 202)
            #expect(initialized.body.isEmpty)
        }
    }

    @Test func initializeWithAnUnsupportedRevisionAnswersASupportedOne() async throws {
        try await withTodo0 { h in
            let answer = try await h.initialize(version: "2024-11-05", token: h.token())
            #expect(answer.status == 200)
            let version = try #require(answer.result?["protocolVersion"]?.string)
            #expect(MCPMode.sessions.map(\.rawValue).contains(version))
        }
    }

    @Test("tools/list lists the four tools with input schemas", arguments: MCPMode.allCases)
    func toolsList(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(mode, h, token: h.token())
            let answer = try await client.request("tools/list")
            #expect(answer.status == 200, "\(answer)")
            let tools = try #require(answer.result?["tools"]?.array)
            #expect(Set(tools.compactMap { $0["name"]?.string }) == ["get-todos", "create-todo", "toggle-todo", "delete-todo"])
            #expect(tools.count == 4)
            for tool in tools {
                #expect(tool["inputSchema"]?["type"] == "object", "\(tool)")
                #expect(tool["description"]?.string?.isEmpty == false, "\(tool)")
            }
            let byName = Dictionary(uniqueKeysWithValues: tools.map { ($0["name"]?.string ?? "", $0) })
            #expect(byName["create-todo"]?["inputSchema"]?["required"] == ["title"])
            #expect(byName["create-todo"]?["inputSchema"]?["properties"]?["title"]?["type"] == "string")
            #expect(byName["toggle-todo"]?["inputSchema"]?["required"] == ["id"])
            #expect(byName["toggle-todo"]?["inputSchema"]?["properties"]?["id"]?["type"] == "integer")
            #expect(byName["delete-todo"]?["inputSchema"]?["properties"]?["id"]?["type"] == "integer")
            if mode == .stateless {
                #expect(answer.result?["resultType"] == "complete")
                #expect(answer.result?["cacheScope"]?.string != nil)
                #expect(answer.result?["ttlMs"]?.number != nil)
            } else {
                #expect(answer.header("Mcp-Session-Id") == client.sessionID)
            }
        }
    }

    @Test("create, list, toggle and delete a todo", arguments: MCPMode.allCases)
    func everyTool(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(mode, h, token: h.token())
            let stateless = mode == .stateless

            let empty = try await client.call("get-todos")
            #expect(empty.status == 200)
            #expect(empty.isError == false)
            #expect(empty.text?.contains("no todos") == true, "\(empty)")
            #expect(empty.result?["structuredContent"]?["todos"] == [])

            let created = try await client.call("create-todo", ["title": "  Buy milk  "])
            #expect(created.status == 200, "\(created)")
            #expect(created.contentType.hasPrefix("application/json"))
            #expect(created.isError == false)
            #expect(created.result?["content"]?[0]?["type"] == "text")
            let todo = try #require(created.result?["structuredContent"]?["todo"])
            let id = try #require(todo["id"]?.int)
            #expect(todo["title"] == "Buy milk")  // trimmed
            #expect(todo["done"] == false)
            #expect(created.text?.contains("Buy milk") == true)
            #expect(created.text?.contains("\(id)") == true)
            if stateless { #expect(created.result?["resultType"] == "complete") }

            let second = try await client.create("Walk the dog")
            #expect(second != id)

            let listed = try await client.call("get-todos")
            #expect(listed.isError == false)
            let todos = try #require(listed.result?["structuredContent"]?["todos"]?.array)
            #expect(todos.compactMap { $0["id"]?.int } == [id, second])
            #expect(listed.text?.contains("Buy milk") == true && listed.text?.contains("Walk the dog") == true, "\(listed)")
            #expect(listed.text?.contains("id \(id)") == true)
            if stateless { #expect(listed.result?["resultType"] == "complete") }

            let toggled = try await client.call("toggle-todo", ["id": .number(Double(id))])
            #expect(toggled.isError == false, "\(toggled)")
            #expect(toggled.result?["structuredContent"]?["todo"]?["done"] == true)
            #expect(toggled.text?.contains("done") == true)
            #expect(try await client.todos().first { $0["id"]?.int == id }?["done"] == true)
            let back = try await client.call("toggle-todo", ["id": .number(Double(id))])
            #expect(back.result?["structuredContent"]?["todo"]?["done"] == false)
            #expect(back.text?.contains("not done") == true, "\(back)")
            if stateless { #expect(back.result?["resultType"] == "complete") }

            let deleted = try await client.call("delete-todo", ["id": .number(Double(id))])
            #expect(deleted.isError == false, "\(deleted)")
            #expect(deleted.result?["structuredContent"]?["todo"]?["id"]?.int == id)
            #expect(deleted.text?.contains("Buy milk") == true)
            #expect(try await client.todos().compactMap { $0["id"]?.int } == [second])
            if stateless { #expect(deleted.result?["resultType"] == "complete") }
        }
    }

    @Test func titlesKeepUnicodeAndTheLimitIsFiveHundredCharacters() async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(.stateless, h, token: h.token())
            let title = "Kaffee ☕️ kaufen – “bald” \"quoted\" <b>&</b>"
            _ = try await client.create(title)
            let longest = String(repeating: "é", count: 500)
            _ = try await client.create(longest)
            #expect(try await client.todos().compactMap { $0["title"]?.string } == [title, longest])
            let tooLong = try await client.call("create-todo", ["title": .string(String(repeating: "é", count: 501))])
            #expect(tooLong.isError == true)
        }
    }

    @Test func aStringRequestIdIsEchoed() async throws {
        try await withTodo0 { h in
            for mode in MCPMode.allCases {
                let client = try await MCPClient.connect(mode, h, token: h.token())
                let answer = try await client.request("tools/list", id: "req-α-7")
                #expect(answer.rpc?["id"] == "req-α-7", "\(mode): \(answer)")
                #expect(answer.rpc?["jsonrpc"] == "2.0")
            }
        }
    }

    @Test func pingAnswersInEveryMode() async throws {
        try await withTodo0 { h in
            for mode in MCPMode.allCases {
                let client = try await MCPClient.connect(mode, h, token: h.token())
                let answer = try await client.request("ping")
                #expect(answer.status == 200)
                #expect(answer.result != nil && answer.error == nil, "\(mode): \(answer)")
            }
        }
    }

    // MARK: 2026-07-28

    @Test func serverDiscoverListsTheSupportedVersions() async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(.stateless, h, token: h.token())
            let answer = try await client.request("server/discover")
            #expect(answer.status == 200, "\(answer)")
            let versions = try #require(answer.result?["supportedVersions"]?.array)
            #expect(versions.contains("2026-07-28"))
            #expect(answer.result?["resultType"] == "complete")
            #expect(answer.result?["capabilities"]?["tools"] != nil)
        }
    }

    @Test func statelessRequestsNeedNoSessionAndGetNone() async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(.stateless, h, token: h.token())
            let answer = try await client.request("tools/list")
            #expect(answer.status == 200)
            #expect(answer.header("Mcp-Session-Id") == nil)
            // The `_meta` envelope alone (no version header) also selects 2026-07-28.
            let message: JSON = [
                "jsonrpc": "2.0", "id": 3, "method": "tools/list",
                "params": ["_meta": [MCPClient.metaVersion: "2026-07-28", MCPClient.metaCapabilities: [:]]],
            ]
            let metaOnly = try await h.postMCP(message.encoded, token: h.token())
            #expect(metaOnly.status == 200, "\(metaOnly)")
            #expect(metaOnly.result?["resultType"] == "complete")
        }
    }

    @Test func statelessRequestWithoutTheMetaEnvelopeIsInvalidParams() async throws {
        try await withTodo0 { h in
            let headers = [("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/list")]
            let noMeta = try await h.postMCP(#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#, token: h.token(), headers: headers)
            #expect(noMeta.errorCode == -32602, "\(noMeta)")
            #expect(noMeta.result == nil)
            let noParams = try await h.postMCP(#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, token: h.token(), headers: headers)
            #expect(noParams.errorCode == -32602, "\(noParams)")
            // A version without client capabilities is not a complete envelope either.
            let versionOnly = try await h.postMCP(
                #"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
                token: h.token(), headers: headers)
            #expect(versionOnly.errorCode == -32602, "\(versionOnly)")
        }
    }

    @Test func statelessMcpMethodHeaderMustMatchTheBody() async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(.stateless, h, token: h.token())
            let answer = try await client.request("tools/list", headers: [("Mcp-Method", "tools/call")])
            #expect(answer.status == 400, "\(answer)")
            #expect(answer.result == nil)
            // Mcp-Name must name the tool called; nothing is created when it does not.
            let name = try await client.request("tools/call", ["name": "create-todo", "arguments": ["title": "x"]], headers: [("Mcp-Name", "get-todos")])
            #expect(name.status == 400, "\(name)")
            #expect(try await client.todos().isEmpty)
        }
    }

    @Test func statelessGetAndDeleteAre405() async throws {
        try await withTodo0 { h in
            let headers = [("Authorization", "Bearer \(h.token())"), ("MCP-Protocol-Version", "2026-07-28")]
            let get = try await h.send(.GET, h.mcpURL, headers: headers + [("Accept", "text/event-stream")])
            #expect(get.status == 405, "\(get)")
            let delete = try await h.send(.DELETE, h.mcpURL, headers: headers)
            #expect(delete.status == 405, "\(delete)")
            #expect(delete.header("Allow")?.contains("POST") == true)
        }
    }

    @Test func statelessNotificationsAreAccepted() async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(.stateless, h, token: h.token())
            let answer = try await client.notify("notifications/cancelled", ["requestId": 9])
            #expect(answer.status == 202)
            #expect(answer.body.isEmpty)
        }
    }

    // MARK: SSE answers

    @Test("progress token + SSE accept → progress event then the response", arguments: MCPMode.allCases)
    func progressOverSSE(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(mode, h, token: h.token())
            let answer = try await client.call("create-todo", ["title": "Streamed"], meta: ["progressToken": "p-1"])
            #expect(answer.status == 200)
            #expect(answer.isSSE, "\(answer)")
            let events = answer.events
            #expect(events.count == 2, "\(events)")
            let progress = try #require(events.first)
            #expect(progress["method"] == "notifications/progress")
            #expect(progress["params"]?["progressToken"] == "p-1")
            #expect(progress["id"] == nil)
            let response = try #require(events.last)
            #expect(response["id"] == 1)
            #expect(response["result"]?["isError"] == false)
            #expect(response["result"]?["structuredContent"]?["todo"]?["title"] == "Streamed")
            if mode == .stateless { #expect(response["result"]?["resultType"] == "complete") }
            // A numeric progress token comes back as a number.
            let numeric = try await client.call("get-todos", meta: ["progressToken": 42])
            #expect(numeric.events.first?["params"]?["progressToken"] == 42)
            #expect(try await client.todos().count == 1)
        }
    }

    @Test func progressTokenWithoutSSEAcceptAnswersJSON() async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(.session20251125, h, token: h.token())
            let answer = try await client.call("get-todos", meta: ["progressToken": "p"], accept: "application/json")
            #expect(answer.status == 200)
            #expect(answer.contentType.hasPrefix("application/json"), "\(answer)")
            #expect(answer.isError == false)
        }
    }

    @Test func alwaysSSEAnswersToolsListAsAStream() async throws {
        try await withTodo0(alwaysSSE: true) { h in
            for mode in MCPMode.allCases {
                let client = try await MCPClient.connect(mode, h, token: h.token())
                let answer = try await client.request("tools/list")
                #expect(answer.status == 200)
                #expect(answer.isSSE, "\(mode): \(answer)")
                #expect(answer.result?["tools"]?.array?.count == 4, "\(mode): \(answer)")
                // A client that accepts only JSON still gets JSON.
                let json = try await client.request("tools/list", accept: "application/json")
                #expect(json.contentType.hasPrefix("application/json"), "\(mode): \(json)")
                #expect(json.result?["tools"]?.array?.count == 4)
            }
        }
    }
}
