import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

/// Streamable-HTTP sessions of the 2025-06-18 / 2025-11-25 revisions.
@Suite("MCP sessions")
struct SessionTests {
    @Test("a request without Mcp-Session-Id after initialize is 400", arguments: MCPMode.sessions)
    func missingSession(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(mode, h, token: h.token())
            let body = #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create-todo","arguments":{"title":"x"}}}"#
            let answer = try await h.postMCP(body, token: client.token, headers: [("MCP-Protocol-Version", mode.rawValue)])
            #expect(answer.status == 400, "\(answer)")
            #expect(answer.result == nil)
            let noVersion = try await h.postMCP(body, token: client.token)
            #expect(noVersion.status == 400, "\(noVersion)")
            #expect(try await client.todos().isEmpty)
        }
    }

    @Test("an unknown session id is 404", arguments: MCPMode.sessions)
    func unknownSession(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let real = try await MCPClient.connect(mode, h, token: h.token())
            for id in ["0123456789abcdef0123456789abcdef", "nope", String(real.sessionID!.reversed())] {
                let client = MCPClient(harness: h, token: h.token(), version: mode.rawValue, sessionID: id)
                let answer = try await client.request("tools/list")
                #expect(answer.status == 404, "\(id): \(answer)")
                #expect(answer.result == nil)
                let get = try await h.send(.GET, h.mcpURL, headers: [("Authorization", "Bearer \(client.token)"), ("Accept", "text/event-stream"), ("Mcp-Session-Id", id)])
                #expect(get.status == 404, "\(id): GET \(get)")
                let delete = try await h.send(.DELETE, h.mcpURL, headers: [("Authorization", "Bearer \(client.token)"), ("Mcp-Session-Id", id)])
                #expect(delete.status == 404, "\(id): DELETE \(delete)")
            }
            #expect(try await real.request("tools/list").status == 200)
        }
    }

    @Test("DELETE ends the session", arguments: MCPMode.sessions)
    func deleteEndsTheSession(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(mode, h, token: h.token())
            _ = try await client.create("Survives the session")
            let other = try await MCPClient.connect(mode, h, token: h.token())
            let delete = try await h.send(.DELETE, h.mcpURL, headers: [
                ("Authorization", "Bearer \(client.token)"), ("Mcp-Session-Id", client.sessionID!), ("MCP-Protocol-Version", mode.rawValue),
            ])
            #expect((200..<300).contains(delete.status), "\(delete)")
            let after = try await client.request("tools/list")
            #expect(after.status == 404, "\(after)")
            let again = try await h.send(.DELETE, h.mcpURL, headers: [("Authorization", "Bearer \(client.token)"), ("Mcp-Session-Id", client.sessionID!)])
            #expect(again.status == 404, "\(again)")
            // Only that session ended; the data and other sessions remain.
            #expect(try await other.todos().compactMap { $0["title"]?.string } == ["Survives the session"])
            // A new initialize gives a working session again.
            let fresh = try await MCPClient.connect(mode, h, token: h.token())
            #expect(fresh.sessionID != client.sessionID)
            #expect(try await fresh.request("tools/list").status == 200)
        }
    }

    @Test("DELETE without a session id is refused", arguments: MCPMode.sessions)
    func deleteWithoutSession(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let delete = try await h.send(.DELETE, h.mcpURL, headers: [("Authorization", "Bearer \(h.token())"), ("MCP-Protocol-Version", mode.rawValue)])
            #expect(delete.status == 400 || delete.status == 405, "\(delete)")
        }
    }

    @Test("another user's session is 404", arguments: MCPMode.sessions)
    func sessionOfAnotherUser(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let alice = try await MCPClient.connect(mode, h, token: h.token("user-a"))
            _ = try await alice.create("Alice's")
            let bob = alice.with(token: h.token("user-b"))
            let list = try await bob.call("get-todos")
            #expect(list.status == 404, "\(list)")
            #expect(list.result == nil)
            let create = try await bob.call("create-todo", ["title": "Bob's, in Alice's session"])
            #expect(create.status == 404, "\(create)")
            let get = try await h.send(.GET, h.mcpURL, headers: [("Authorization", "Bearer \(bob.token)"), ("Accept", "text/event-stream"), ("Mcp-Session-Id", alice.sessionID!)])
            #expect(get.status == 404, "\(get)")
            // user-b cannot end user-a's session either.
            let delete = try await h.send(.DELETE, h.mcpURL, headers: [("Authorization", "Bearer \(bob.token)"), ("Mcp-Session-Id", alice.sessionID!)])
            #expect(delete.status == 404, "\(delete)")
            #expect(try await alice.request("tools/list").status == 200)
            #expect(try await alice.todos().compactMap { $0["title"]?.string } == ["Alice's"])
            let bobOwn = try await MCPClient.connect(.stateless, h, token: h.token("user-b"))
            #expect(try await bobOwn.todos().isEmpty)
            // The same user with a fresh token keeps the session.
            #expect(try await alice.with(token: h.token("user-a")).request("tools/list").status == 200)
        }
    }

    @Test("an MCP-Protocol-Version other than the negotiated one is 400", arguments: MCPMode.sessions)
    func protocolVersionMismatch(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(mode, h, token: h.token())
            let other = mode == .session20250618 ? "2025-11-25" : "2025-06-18"
            for version in [other, "2024-11-05", "1999-01-01"] {
                let mismatched = try await client.request("tools/call", ["name": "create-todo", "arguments": ["title": "wrong version"]],
                                                          headers: [("MCP-Protocol-Version", version)])
                #expect(mismatched.status == 400, "\(version): \(mismatched)")
                #expect(mismatched.result == nil)
            }
            #expect(try await client.todos().compactMap { $0["title"]?.string }.allSatisfy { $0 != "wrong version" })
        }
    }

    @Test("GET opens an SSE stream that ends with the session", arguments: MCPMode.sessions)
    func serverStream(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(mode, h, token: h.token())
            var request = HTTPClientRequest(url: h.mcpURL)
            request.method = .GET
            request.headers.add(name: "Authorization", value: "Bearer \(client.token)")
            request.headers.add(name: "Accept", value: "text/event-stream")
            request.headers.add(name: "Mcp-Session-Id", value: client.sessionID!)
            request.headers.add(name: "MCP-Protocol-Version", value: mode.rawValue)
            let response = try await Todo0Harness.client.execute(request, timeout: .seconds(60))
            #expect(response.status.code == 200)
            #expect(response.headers.first(name: "Content-Type")?.hasPrefix("text/event-stream") == true)

            let (chunks, continuation) = AsyncStream.makeStream(of: String.self)
            // Reads the stream; true when the server ended it (not when cancelled).
            let reader = Task<Bool, Never> {
                defer { continuation.finish() }
                do {
                    for try await buffer in response.body { continuation.yield(String(buffer: buffer)) }
                    return !Task.isCancelled
                } catch {
                    return false
                }
            }
            let watchdog = Task {
                try await Task.sleep(for: .seconds(20))
                reader.cancel()
            }
            var received = chunks.makeAsyncIterator()
            let first = await received.next()
            #expect(first != nil && !first!.isEmpty, "no bytes arrived on the stream")

            // The session still works while its stream is open.
            #expect(try await client.request("tools/list").status == 200)

            let delete = try await h.send(.DELETE, h.mcpURL, headers: [("Authorization", "Bearer \(client.token)"), ("Mcp-Session-Id", client.sessionID!)])
            #expect((200..<300).contains(delete.status), "\(delete)")
            let start = ContinuousClock.now
            let endedByServer = await reader.value
            watchdog.cancel()
            #expect(endedByServer, "the stream did not end after DELETE")
            #expect(ContinuousClock.now - start < .seconds(10))
        }
    }

    @Test func getNeedsAnSSEAcceptAndASession() async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(.session20251125, h, token: h.token())
            let auth = ("Authorization", "Bearer \(client.token)")
            let noAccept = try await h.send(.GET, h.mcpURL, headers: [auth, ("Accept", "application/json"), ("Mcp-Session-Id", client.sessionID!)])
            #expect(noAccept.status == 406 || noAccept.status == 405, "\(noAccept)")
            let noSession = try await h.send(.GET, h.mcpURL, headers: [auth, ("Accept", "text/event-stream")])
            #expect(noSession.status == 400 || noSession.status == 405, "\(noSession)")
        }
    }

    @Test func notificationsAndResponsesInASessionAre202() async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(.session20251125, h, token: h.token())
            let note = try await client.notify("notifications/cancelled", ["requestId": 1, "reason": "test"])
            #expect(note.status == 202)
            #expect(note.body.isEmpty)
            let response = try await h.postMCP(#"{"jsonrpc":"2.0","id":"s-1","result":{}}"#, token: client.token, headers: client.headers(for: ""))
            #expect(response.status == 202, "\(response)")
            #expect(response.body.isEmpty)
        }
    }
}
