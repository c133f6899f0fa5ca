import Foundation
import Testing

/// Concurrent writers and restarts: no lost updates, nothing forgotten.
@Suite("Concurrency and persistence")
struct StoreTests {
    @Test(.timeLimit(.minutes(2)))
    func fiftyConcurrentCreatesGetFiftyIDs() async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(.stateless, h, token: h.token())
            let ids = try await withThrowingTaskGroup(of: Int.self) { group in
                for n in 0..<50 {
                    group.addTask { try await client.create("Todo \(n)") }
                }
                var ids: [Int] = []
                for try await id in group { ids.append(id) }
                return ids
            }
            #expect(ids.count == 50)
            #expect(Set(ids).count == 50)
            let todos = try await client.todos()
            #expect(todos.count == 50)
            #expect(Set(todos.compactMap { $0["id"]?.int }) == Set(ids))
            #expect(Set(todos.compactMap { $0["title"]?.string }) == Set((0..<50).map { "Todo \($0)" }))
            // Another user sees none of them.
            let other = try await MCPClient.connect(.stateless, h, token: h.token("user-b"))
            #expect(try await other.todos().isEmpty)
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func concurrentTogglesOfOneTodoAreNotLost() async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(.stateless, h, token: h.token())
            let id = try await client.create("Flip me")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<20 {
                    group.addTask { _ = try await client.tool("toggle-todo", ["id": .number(Double(id))]) }
                }
                try await group.waitForAll()
            }
            // An even number of flips: back to not done.
            #expect(try await client.todos().first?["done"] == false)
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func todosSurviveARestart() async throws {
        let first = try await Todo0Harness.start()
        let ids: [Int]
        do {
            let alice = try await MCPClient.connect(.session20251125, first, token: first.token("user-a"))
            ids = [try await alice.create("Persist one"), try await alice.create("Persist two"), try await alice.create("Persist three")]
            _ = try await alice.tool("toggle-todo", ["id": .number(Double(ids[1]))])
            _ = try await alice.tool("delete-todo", ["id": .number(Double(ids[2]))])
            let bob = try await MCPClient.connect(.stateless, first, token: first.token("user-b"))
            _ = try await bob.create("Bob persists")
        } catch {
            await first.stop()
            throw error
        }
        await first.stop(keepData: true)

        let second = try await Todo0Harness.start(dataDirectory: first.dataDirectory)
        do {
            let alice = try await MCPClient.connect(.stateless, second, token: second.token("user-a"))
            let todos = try await alice.todos()
            #expect(todos.compactMap { $0["id"]?.int } == [ids[0], ids[1]])
            #expect(todos.compactMap { $0["title"]?.string } == ["Persist one", "Persist two"])
            #expect(todos.map { $0["done"] } == [false, true])
            let rest = try await second.rest(.GET, "/api/todos", token: second.token("user-b"))
            #expect(rest.jsonValue?["todos"]?.array?.compactMap { $0["title"]?.string } == ["Bob persists"])
            // Sessions do not survive a restart: the client re-initializes.
            let next = try await alice.create("After restart")
            #expect(!ids.contains(next), "an id was reused after a restart")
            #expect(next > ids.max()!)
        } catch {
            await second.stop()
            throw error
        }
        await second.stop()
    }

    @Test func sessionsEndWithTheProcess() async throws {
        let first = try await Todo0Harness.start()
        let client: MCPClient
        do {
            client = try await MCPClient.connect(.session20251125, first, token: first.token())
        } catch {
            await first.stop()
            throw error
        }
        await first.stop(keepData: true)
        let second = try await Todo0Harness.start(dataDirectory: first.dataDirectory)
        let stale = MCPClient(harness: second, token: second.token(), version: client.version, sessionID: client.sessionID)
        let answer = try? await stale.request("tools/list")
        await second.stop()
        #expect(answer?.status == 404, "\(String(describing: answer))")
    }
}
