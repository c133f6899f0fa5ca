@testable import Gateway
import Testing

/// The `/mcp` endpoint's naming rules and the globs of virtual servers.
@Suite("Unit: /mcp names and virtual-server globs")
struct UnitAggregateNamesTests {
    @Test func prefixedNamesSplitAtTheKnownConnection() {
        let known: Set = ["todo0", "github-mcp"]
        #expect(AggregateNames.prefixed("get-todos", connection: "todo0") == "todo0__get-todos")
        #expect(AggregateNames.split("todo0__get-todos", known: known.contains)! == ("todo0", "get-todos"))
        #expect(AggregateNames.split("github-mcp__a__b", known: known.contains)! == ("github-mcp", "a__b"), "a tool name may contain '__'")
        #expect(AggregateNames.split("nowhere__tool", known: known.contains) == nil)
        #expect(AggregateNames.split("todo0", known: known.contains) == nil)
        #expect(AggregateNames.split("__todo0", known: known.contains) == nil)
    }

    @Test func resourceURIsRoundTripAndStayParseable() {
        for original in ["todo://list", "file:///a b/c?d=e#f", "https://x.test/r/1", "ünïcode:é"] {
            let merged = AggregateNames.resourceURI(original, connection: "todo0")
            #expect(merged.hasPrefix("switchboard://todo0/"))
            #expect(!merged.dropFirst("switchboard://todo0/".count).contains { ":/?# ".contains($0) }, "\(merged)")
            let back = AggregateNames.splitResourceURI(merged)
            #expect(back?.connection == "todo0" && back?.uri == original, "\(merged)")
        }
        #expect(AggregateNames.resourceURI("todo://items/{id}", connection: "t", template: true) == "switchboard://t/todo%3A%2F%2Fitems%2F{id}")
        #expect(AggregateNames.splitResourceURI("todo://list") == nil)
        #expect(AggregateNames.splitResourceURI("switchboard://nopath") == nil)
    }

    @Test(arguments: [
        ("todo0__*", "todo0__get-todos", true), ("todo0__*", "todo01__x", false), ("todo0__get-?odos", "todo0__get-todos", true),
        ("*__get-*", "github__get-me", true), ("todo0__[gc]*", "todo0__create-todo", true), ("todo0__[!gc]*", "todo0__create-todo", false),
        ("todo0__[a-f]*", "todo0__delete", true), ("exact", "exact", true), ("exact", "exactly", false), ("a*b*c", "aXXbYYc", true),
        ("a*b*c", "aXXbYY", false),
    ])
    func globsMatch(_ pattern: String, _ name: String, _ expected: Bool) throws {
        let glob = try Glob.parse(pattern).get()
        #expect(glob.matches(name) == expected, "\(pattern) ~ \(name)")
    }

    @Test func badGlobsAreRefusedWithTheReason() {
        for (pattern, reason) in [("", "empty"), ("todo0__[abc", "never closed"), ("x[z-a]", "backwards")] {
            guard case .failure(let error) = Glob.parse(pattern) else {
                Issue.record("'\(pattern)' parsed")
                continue
            }
            #expect(error.message.contains(reason), "\(pattern): \(error.message)")
        }
    }

    @Test func aVirtualServerAsksOnlyTheConnectionsItsGlobsCanMatch() throws {
        let server = VirtualServer(
            name: "reader", title: nil, include: [try Glob.parse("todo0__get-*").get(), try Glob.parse("g*b__x").get()],
            exclude: [try Glob.parse("*__get-secret").get()])
        #expect(server.mayInclude(connection: "todo0"))
        #expect(server.mayInclude(connection: "github"))
        #expect(!server.mayInclude(connection: "weather"))
        #expect(server.includes("todo0__get-todos"))
        #expect(!server.includes("todo0__get-secret"))
        #expect(!server.includes("todo0__create-todo"))
    }
}
