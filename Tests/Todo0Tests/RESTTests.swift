import Foundation
import Testing

/// The REST face of todo0: same tokens, same scopes, same store, per-user isolation.
@Suite("REST API")
struct RESTTests {
    @Test func createListUpdateDelete() async throws {
        try await withTodo0 { h in
            let token = h.token()
            let empty = try await h.rest(.GET, "/api/todos", token: token)
            #expect(empty.status == 200, "\(empty)")
            #expect(empty.jsonValue?["todos"] == [])

            let created = try await h.rest(.POST, "/api/todos", token: token, body: #"{"title":"  Buy milk  "}"#)
            #expect(created.status == 201, "\(created)")
            #expect(created.contentType.hasPrefix("application/json"))
            let id = try #require(created.jsonValue?["id"]?.int)
            #expect(created.jsonValue?["title"] == "Buy milk")
            #expect(created.jsonValue?["done"] == false)
            #expect(created.jsonValue?["created_at"]?.string != nil)

            let second = try await h.rest(.POST, "/api/todos", token: token, body: #"{"title":"Walk the dog"}"#)
            let secondID = try #require(second.jsonValue?["id"]?.int)

            let listed = try await h.rest(.GET, "/api/todos", token: token)
            #expect(listed.jsonValue?["todos"]?.array?.compactMap { $0["id"]?.int } == [id, secondID])

            let done = try await h.rest(.PATCH, "/api/todos/\(id)", token: token, body: #"{"done":true}"#)
            #expect(done.status == 200, "\(done)")
            #expect(done.jsonValue?["done"] == true)
            let renamed = try await h.rest(.PATCH, "/api/todos/\(id)", token: token, body: #"{"title":"Buy oat milk"}"#)
            #expect(renamed.status == 200, "\(renamed)")
            #expect(renamed.jsonValue?["title"] == "Buy oat milk")
            #expect(renamed.jsonValue?["done"] == true)
            let both = try await h.rest(.PATCH, "/api/todos/\(id)", token: token, body: #"{"title":"Buy milk","done":false}"#)
            #expect(both.jsonValue?["title"] == "Buy milk")
            #expect(both.jsonValue?["done"] == false)
            // Setting `done` is idempotent (not a toggle).
            _ = try await h.rest(.PATCH, "/api/todos/\(id)", token: token, body: #"{"done":true}"#)
            let twice = try await h.rest(.PATCH, "/api/todos/\(id)", token: token, body: #"{"done":true}"#)
            #expect(twice.jsonValue?["done"] == true)

            let deleted = try await h.rest(.DELETE, "/api/todos/\(id)", token: token)
            #expect(deleted.status == 204, "\(deleted)")
            let deletedAgain = try await h.rest(.DELETE, "/api/todos/\(id)", token: token)
            #expect(deletedAgain.status == 404, "\(deletedAgain)")
            let patchDeleted = try await h.rest(.PATCH, "/api/todos/\(id)", token: token, body: #"{"done":false}"#)
            #expect(patchDeleted.status == 404, "\(patchDeleted)")
            let after = try await h.rest(.GET, "/api/todos", token: token)
            #expect(after.jsonValue?["todos"]?.array?.compactMap { $0["id"]?.int } == [secondID])
        }
    }

    @Test func restAndMCPShareTheStore() async throws {
        try await withTodo0 { h in
            let token = h.token()
            let created = try await h.rest(.POST, "/api/todos", token: token, body: #"{"title":"From REST"}"#)
            let id = try #require(created.jsonValue?["id"]?.int)
            let client = try await MCPClient.connect(.stateless, h, token: token)
            #expect(try await client.todos().compactMap { $0["title"]?.string } == ["From REST"])
            #expect(try await client.tool("toggle-todo", ["id": .number(Double(id))])["isError"] == false)
            let mcpID = try await client.create("From MCP")
            let listed = try await h.rest(.GET, "/api/todos", token: token)
            let todos = try #require(listed.jsonValue?["todos"]?.array)
            #expect(todos.compactMap { $0["id"]?.int } == [id, mcpID])
            #expect(todos.first?["done"] == true)
        }
    }

    @Test func tokensAreRequired() async throws {
        try await withTodo0 { h in
            for (method, path, body) in [("GET", "/api/todos", nil), ("POST", "/api/todos", #"{"title":"x"}"#), ("PATCH", "/api/todos/1", #"{"done":true}"#), ("DELETE", "/api/todos/1", nil)] as [(String, String, String?)] {
                let answer = try await h.rest(.init(rawValue: method), path, token: nil, body: body)
                #expect(answer.status == 401, "\(method) \(path): \(answer)")
                #expect(answer.header("WWW-Authenticate")?.hasPrefix("Bearer ") == true)
                #expect(answer.challenge["error"] == nil)
                let wrong = try await h.rest(.init(rawValue: method), path, token: h.token(claims: ["aud": "http://127.0.0.1:5001/api"]), body: body)
                #expect(wrong.status == 401, "\(method) \(path): \(wrong)")
                #expect(wrong.challenge["error"] == "invalid_token")
            }
        }
    }

    @Test func scopesAreEnforced() async throws {
        try await withTodo0 { h in
            let full = h.token()
            let id = try #require(try await h.rest(.POST, "/api/todos", token: full, body: #"{"title":"Existing"}"#).jsonValue?["id"]?.int)
            let readOnly = h.token(scopes: [Todo0Harness.connect, Todo0Harness.read])
            let manageOnly = h.token(scopes: [Todo0Harness.connect, Todo0Harness.manage])
            let noConnect = h.token(scopes: [Todo0Harness.read, Todo0Harness.manage])

            #expect(try await h.rest(.GET, "/api/todos", token: readOnly).status == 200)
            let refusals: [(String, String, String?, String)] = [
                ("POST", "/api/todos", #"{"title":"Refused"}"#, readOnly),
                ("PATCH", "/api/todos/\(id)", #"{"done":true}"#, readOnly),
                ("PATCH", "/api/todos/\(id)", #"{"title":"Refused"}"#, readOnly),
                ("DELETE", "/api/todos/\(id)", nil, readOnly),
                ("GET", "/api/todos", nil, manageOnly),
                ("GET", "/api/todos", nil, noConnect),
                ("POST", "/api/todos", #"{"title":"Refused"}"#, noConnect),
            ]
            for (method, path, body, token) in refusals {
                let answer = try await h.rest(.init(rawValue: method), path, token: token, body: body)
                #expect(answer.status == 403, "\(method) \(path): \(answer)")
                #expect(answer.challenge["error"] == "insufficient_scope", "\(method) \(path): \(answer.header("WWW-Authenticate") ?? "-")")
                #expect(answer.jsonValue?["error"] == "insufficient_scope")
                let scope = Set((answer.challenge["scope"] ?? "").split(separator: " ").map(String.init))
                #expect(scope.contains(Todo0Harness.connect), "\(method) \(path): \(scope)")
                #expect(scope.contains(method == "GET" ? Todo0Harness.read : Todo0Harness.manage), "\(method) \(path): \(scope)")
            }
            let todos = try await h.rest(.GET, "/api/todos", token: full).jsonValue?["todos"]?.array ?? []
            #expect(todos.count == 1)
            #expect(todos.first?["title"] == "Existing")
            #expect(todos.first?["done"] == false)
        }
    }

    @Test func usersAreIsolated() async throws {
        try await withTodo0 { h in
            let alice = h.token("user-a")
            let bob = h.token("user-b")
            let id = try #require(try await h.rest(.POST, "/api/todos", token: alice, body: #"{"title":"Alice's"}"#).jsonValue?["id"]?.int)
            #expect(try await h.rest(.GET, "/api/todos", token: bob).jsonValue?["todos"] == [])
            let patch = try await h.rest(.PATCH, "/api/todos/\(id)", token: bob, body: #"{"done":true}"#)
            #expect(patch.status == 404, "\(patch)")
            let rename = try await h.rest(.PATCH, "/api/todos/\(id)", token: bob, body: #"{"title":"Bob's now"}"#)
            #expect(rename.status == 404, "\(rename)")
            let delete = try await h.rest(.DELETE, "/api/todos/\(id)", token: bob)
            #expect(delete.status == 404, "\(delete)")
            #expect(!patch.body.contains("Alice"))
            // The same answer as for an id nobody has.
            let missing = try await h.rest(.PATCH, "/api/todos/987654", token: bob, body: #"{"done":true}"#)
            #expect(missing.status == patch.status)
            #expect(missing.jsonValue == patch.jsonValue)
            let todos = try await h.rest(.GET, "/api/todos", token: alice).jsonValue?["todos"]?.array ?? []
            #expect(todos.map { $0["title"] } == ["Alice's"])
            #expect(todos.first?["done"] == false)
        }
    }

    @Test func validationErrorsAre400JSON() async throws {
        try await withTodo0 { h in
            let token = h.token()
            let id = try #require(try await h.rest(.POST, "/api/todos", token: token, body: #"{"title":"Valid"}"#).jsonValue?["id"]?.int)
            let bad: [(String, String, String)] = [
                ("POST", "/api/todos", "{}"),
                ("POST", "/api/todos", #"{"title":""}"#),
                ("POST", "/api/todos", #"{"title":"   \n "}"#),
                ("POST", "/api/todos", #"{"title":42}"#),
                ("POST", "/api/todos", #"{"title":null}"#),
                ("POST", "/api/todos", "not json"),
                ("POST", "/api/todos", #"["title"]"#),
                ("POST", "/api/todos", ""),
                ("POST", "/api/todos", #"{"title":"\#(String(repeating: "x", count: 501))"}"#),
                ("POST", "/api/todos", #"{"title":"\#(String(repeating: "x", count: 100_000))"}"#),
                ("PATCH", "/api/todos/\(id)", "{}"),
                ("PATCH", "/api/todos/\(id)", #"{"done":"yes"}"#),
                ("PATCH", "/api/todos/\(id)", #"{"done":1}"#),
                ("PATCH", "/api/todos/\(id)", #"{"title":""}"#),
                ("PATCH", "/api/todos/\(id)", #"{"title":"\#(String(repeating: "x", count: 501))"}"#),
                ("PATCH", "/api/todos/\(id)", "not json"),
            ]
            for (method, path, body) in bad {
                let answer = try await h.rest(.init(rawValue: method), path, token: token, body: body)
                #expect(answer.status == 400, "\(method) \(body.prefix(60)): \(answer)")
                #expect(answer.contentType.hasPrefix("application/json"), "\(method) \(body.prefix(60))")
                #expect(answer.jsonValue?["error"]?.string != nil, "\(method) \(body.prefix(60)): \(answer)")
                #expect(answer.jsonValue?["message"]?.string?.isEmpty == false, "\(method) \(body.prefix(60))")
            }
            let todos = try await h.rest(.GET, "/api/todos", token: token).jsonValue?["todos"]?.array ?? []
            #expect(todos.count == 1)
            #expect(todos.first?["title"] == "Valid")
            #expect(todos.first?["done"] == false)
            let notAnID = try await h.rest(.PATCH, "/api/todos/abc", token: token, body: #"{"done":true}"#)
            #expect(notAnID.status == 404 || notAnID.status == 400, "\(notAnID)")
        }
    }

    @Test func aRejectedPatchChangesNothing() async throws {
        try await withTodo0 { h in
            let token = h.token()
            let id = try #require(try await h.rest(.POST, "/api/todos", token: token, body: #"{"title":"Original"}"#).jsonValue?["id"]?.int)
            let answer = try await h.rest(.PATCH, "/api/todos/\(id)", token: token, body: #"{"title":"Renamed","done":"yes"}"#)
            #expect(answer.status == 400, "\(answer)")
            let todos = try await h.rest(.GET, "/api/todos", token: token).jsonValue?["todos"]?.array ?? []
            #expect(todos.first?["title"] == "Original", "\(todos)")
        }
    }
}
