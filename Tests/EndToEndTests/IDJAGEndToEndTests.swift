import Foundation
import HTTPTypes
import SwitchboardTesting
import Testing

/// todo0 behind the gateway with the `idjag` strategy: ID token → ID-JAG → access token.
@Suite("End to end: MCP through the gateway with ID-JAG")
struct IDJAGEndToEndTests {
    @Test("get-todos through /mcp/todo0 is answered by todo0; the upstream gets an at+jwt access token, never the ID token")
    func listTodos() async throws {
        try await withEndToEnd { env in
            let alice = try await env.signIn("alice")

            // MCP 2026-07-28 stateless tools/call.
            let answer = try await env.callTool("todo0", "get-todos", token: alice.idToken)
            #expect(answer.status == 200, "\(answer)")
            let result = try #require(answer.result, "no JSON-RPC result: \(answer)")
            #expect(result["isError"] as? Bool == false, "\(answer)")
            #expect((result["structuredContent"] as? [String: Any])?["todos"] is [Any], "not todo0's get-todos result: \(answer)")

            // The initialize handshake (2025-11-25) goes through too, session header included.
            let initialize = try await env.gateway(
                .POST, "/mcp/todo0", token: alice.idToken, headers: [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")],
                body: #"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}"#)
            #expect(initialize.status == 200, "\(initialize)")
            #expect(initialize.header("Mcp-Session-Id")?.isEmpty == false, "initialize returned no Mcp-Session-Id: \(initialize)")
            #expect((initialize.result?["serverInfo"] as? [String: Any])?["name"] != nil, "\(initialize)")

            // What an idjag upstream really receives: the recording upstream behind the same AS.
            let recorded = try await env.gateway(
                .POST, "/mcp/recorder", token: alice.idToken, headers: MCPMessage.headers(method: "tools/call", name: "anything") + [("Cookie", alice.cookie)],
                body: MCPMessage.toolCall("anything", [:], id: 5))
            #expect(recorded.status == 200, "\(recorded)")
            let fields = try #require(env.recorder.requests.last, "the recording upstream saw no request")
            let authorization = try #require(fields[.authorization], "no Authorization reached the upstream")
            #expect(authorization.hasPrefix("Bearer "))
            let token = String(authorization.dropFirst("Bearer ".count))
            #expect(token != alice.idToken, "the user's ID token was forwarded upstream")
            let jwt = try DecodedJWT(token)
            #expect(jwt.header["typ"] as? String == "at+jwt", "header: \(jwt.header)")
            let audience = (jwt.claims["aud"] as? String).map { [$0] } ?? (jwt.claims["aud"] as? [String] ?? [])
            #expect(audience == [EndToEnd.todoResource], "aud: \(audience)")
            #expect(jwt.claims["iss"] as? String == env.todoAuthorizationServer)
            #expect(jwt.claims["sub"] as? String == "00u-alice")
            #expect((jwt.claims["act"] as? [String: Any])?["sub"] as? String == EndToEnd.agentID, "act: \(jwt.claims["act"] ?? "none")")
            #expect(Set(jwt.scopes).isSuperset(of: ["mcp:connect", "mcp:tools:read"]), "scopes: \(jwt.scopes)")
            for field in fields {
                #expect(!field.value.contains(alice.idToken), "header \(field.name) carries the ID token")
            }
            #expect(fields[.cookie] == nil, "the caller's Cookie reached the upstream")
        }
    }

    @Test("create-todo lacks mcp:tools:manage: the gateway steps up, the agent sees one success, and later calls keep the wider scopes")
    func scopeStepUp() async throws {
        try await withEndToEnd { env in
            let alice = try await env.signIn("alice")
            let first = try await env.callTool("todo0", "create-todo", ["title": "buy milk"], token: alice.idToken)
            #expect(first.status == 200, "\(first)")
            let result = try #require(first.result, "no tool result: \(first)")
            #expect(result["isError"] as? Bool == false, "\(first)")
            #expect(first.headers.first(name: "switchboard-step-up") == "mcp:tools:manage", "the answer must name the scopes the step-up added: \(first.headers)")
            let todo = (result["structuredContent"] as? [String: Any])?["todo"] as? [String: Any]
            let id = try #require((todo?["id"] as? NSNumber)?.intValue, "no todo id in \(first)")

            let card = try await env.card("todo0")
            let stepUps = try #require(EndToEnd.count(card, "step_ups"), "no counts.step_ups in \(card)")
            #expect(stepUps >= 1, "no step-up counted: \(card)")
            #expect(env.front.idJAGExchanges == 2, "expected the first exchange and one step-up exchange, saw \(env.front.idJAGExchanges)")

            // The same user again: the gateway asks for the widened scopes at once.
            let exchanges = env.front.idJAGExchanges
            let second = try await env.callTool("todo0", "create-todo", ["title": "call mom"], id: 2, token: alice.idToken)
            #expect(second.status == 200, "\(second)")
            #expect(second.result?["isError"] as? Bool == false, "\(second)")
            #expect(second.headers.first(name: "switchboard-step-up") == nil, "no step-up happened, yet the answer says one did")
            let deleted = try await env.callTool("todo0", "delete-todo", ["id": id], id: 3, token: alice.idToken)
            #expect(deleted.status == 200, "\(deleted)")
            #expect(deleted.result?["isError"] as? Bool == false, "\(deleted)")
            #expect(EndToEnd.count(try await env.card("todo0"), "step_ups") == stepUps, "a remembered scope set still stepped up")
            #expect(env.front.idJAGExchanges == exchanges, "the second manage call made a new exchange")

            let list = try await env.callTool("todo0", "get-todos", id: 4, token: alice.idToken)
            let todos = (list.result?["structuredContent"] as? [String: Any])?["todos"] as? [[String: Any]] ?? []
            #expect(todos.compactMap { $0["title"] as? String } == ["call mom"], "\(list)")
        }
    }

    @Test("20 concurrent first calls of one user cause exactly one ID-JAG exchange")
    func concurrentFirstCalls() async throws {
        try await withEndToEnd { env in
            let alice = try await env.signIn("alice")
            #expect(env.front.idJAGExchanges == 0)
            let answers = try await withThrowingTaskGroup(of: Answer.self) { group in
                for i in 1...20 {
                    group.addTask { try await env.callTool("todo0", "get-todos", id: i, token: alice.idToken) }
                }
                var out: [Answer] = []
                for try await answer in group { out.append(answer) }
                return out
            }
            #expect(answers.count == 20)
            for answer in answers {
                #expect(answer.status == 200 && answer.result?["isError"] as? Bool == false, "\(answer)")
            }
            #expect(env.front.idJAGExchanges == 1, "ID-JAG exchanges at the IdP: \(env.front.idJAGExchanges)")
            #expect(env.front.jwtBearerGrants == 1, "JWT-bearer grants at the todo-mcp AS: \(env.front.jwtBearerGrants)")
        }
    }

    @Test("the todo-mcp-as card turns LIVE once an ID-JAG was minted through it")
    func authorizationServerCard() async throws {
        try await withEndToEnd { env in
            let before = try await env.card("todo-mcp-as")
            #expect(before["status"] as? String == "IDLE", "\(before)")
            #expect(before["kind"] as? String == "authorization_server")

            let alice = try await env.signIn("alice")
            let answer = try await env.callTool("todo0", "get-todos", token: alice.idToken)
            #expect(answer.status == 200, "\(answer)")

            let after = try await env.card("todo-mcp-as")
            #expect(after["status"] as? String == "LIVE", "\(after)")
            #expect(after["last_success_at"] is String, "\(after)")
            let todo0 = try await env.card("todo0")
            #expect(todo0["status"] as? String == "LIVE", "\(todo0)")
            #expect((todo0["details"] as? [String: Any])?["authorization_server"] as? String == "todo-mcp-as", "\(todo0)")
        }
    }
}


@Suite("End to end: step-up from an MCP tool result")
struct ToolResultStepUpTests {
    @Test("a tool result carrying the insufficient_scope JSON makes the gateway step up and replay; the agent sees the success")
    func toolResultChallenge() async throws {
        try await withEndToEnd { env in
            let alice = try await env.signIn("alice")
            let answer = try await env.gateway(
                .POST, "/mcp/scoped", token: alice.idToken, headers: MCPMessage.headers(method: "tools/call", name: "manage-thing"),
                body: MCPMessage.toolCall("manage-thing", [:], id: 9))
            #expect(answer.status == 200, "\(answer)")
            #expect(answer.body.contains("done with manage"), "the agent must see the replayed, successful result: \(answer.body)")
            #expect(!answer.body.contains("insufficient_scope"), "\(answer.body)")
            #expect(answer.headers.first(name: "switchboard-step-up")?.split(separator: " ").contains("mcp:tools:manage") == true, "\(answer.headers)")
            let card = try await env.card("scoped")
            #expect((EndToEnd.count(card, "step_ups") ?? 0) >= 1, "\(card)")
        }
    }
}
