import Foundation
import SwitchboardJSON
import MCPServerKit

/// The four tools todo0 offers, their schemas, the scope each needs, and their behaviour.
struct TodoTools: MCPToolbox {
    let store: TodoStore

    struct Definition: Sendable {
        var name: String
        var title: String
        var description: String
        var inputSchema: JSONValue
        var scope: String
    }

    static let readScope = "mcp:tools:read"
    static let manageScope = "mcp:tools:manage"
    static let connectScope = "mcp:connect"

    static let definitions: [Definition] = [
        Definition(
            name: "get-todos", title: "List todos", description: "List the signed-in user's todos with their ids and whether each is done.",
            inputSchema: ["type": "object", "properties": [:], "additionalProperties": false], scope: readScope),
        Definition(
            name: "create-todo", title: "Add a todo", description: "Add a todo for the signed-in user.",
            inputSchema: ["type": "object", "properties": ["title": ["type": "string", "minLength": 1, "maxLength": .number(Double(TodoStore.maxTitleLength)),
                                                                     "description": "What to do"]],
                          "required": ["title"], "additionalProperties": false], scope: manageScope),
        Definition(
            name: "toggle-todo", title: "Mark a todo done or not done", description: "Flip a todo between done and not done, by id.",
            inputSchema: ["type": "object", "properties": ["id": ["type": "integer", "minimum": 1, "description": "The todo's id"]],
                          "required": ["id"], "additionalProperties": false], scope: manageScope),
        Definition(
            name: "delete-todo", title: "Delete a todo", description: "Delete a todo, by id.",
            inputSchema: ["type": "object", "properties": ["id": ["type": "integer", "minimum": 1, "description": "The todo's id"]],
                          "required": ["id"], "additionalProperties": false], scope: manageScope),
    ]

    static func definition(_ name: String) -> Definition? { definitions.first { $0.name == name } }

    var serverInfo: JSONValue { ["name": "todo0", "title": "Todo0", "version": "1.0.0"] }
    var instructions: String { "Per-user todos: list, add, toggle and delete by id." }
    var listing: JSONValue { Self.listing }
    func requiredScopes(for tool: String) -> Set<String>? { Self.definition(tool).map { [$0.scope] } }

    /// The `tools/list` entries.
    static var listing: JSONValue {
        .array(definitions.map { ["name": .string($0.name), "title": .string($0.title), "description": .string($0.description), "inputSchema": $0.inputSchema] })
    }

    /// Runs a tool for `owner`. Bad arguments and unknown ids are tool errors (`isError: true`)
    /// with a sentence the model can act on; nothing here throws for user input.
    func call(_ name: String, arguments: [String: JSONValue], owner: String) async throws -> JSONValue {
        switch name {
        case "get-todos":
            let todos = try await store.list(owner: owner)
            let text = todos.isEmpty
                ? "You have no todos yet."
                : "You have \(todos.count) todo\(todos.count == 1 ? "" : "s"):\n" + todos.map { "- [\($0.done ? "x" : " ")] \($0.title) (id \($0.id))" }.joined(separator: "\n")
            return Self.result(text, structured: ["todos": .array(todos.map(Self.json))])
        case "create-todo":
            guard let raw = arguments["title"]?.string else { return Self.toolError("create-todo needs a 'title' (a string).") }
            let title = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !title.isEmpty else { return Self.toolError("The title is empty; say what the todo is.") }
            guard title.count <= TodoStore.maxTitleLength else {
                return Self.toolError("The title is \(title.count) characters long; the limit is \(TodoStore.maxTitleLength).")
            }
            let todo = try await store.create(owner: owner, title: title)
            return Self.result("Added todo \(todo.id): \(todo.title)", structured: ["todo": Self.json(todo)])
        case "toggle-todo", "delete-todo":
            guard let id = arguments["id"]?.positiveInteger else { return Self.toolError("\(name) needs an 'id' (a whole number, e.g. 2).") }
            if name == "toggle-todo" {
                guard let todo = try await store.toggle(owner: owner, id: id) else { return Self.toolError("There is no todo with id \(id).") }
                return Self.result("Todo \(todo.id) (\(todo.title)) is now \(todo.done ? "done" : "not done").", structured: ["todo": Self.json(todo)])
            }
            guard let todo = try await store.delete(owner: owner, id: id) else { return Self.toolError("There is no todo with id \(id).") }
            return Self.result("Deleted todo \(todo.id): \(todo.title)", structured: ["todo": Self.json(todo), "deleted": true])
        default:
            return Self.toolError("Unknown tool '\(name)'.")
        }
    }

    static func json(_ t: Todo) -> JSONValue {
        ["id": .number(Double(t.id)), "title": .string(t.title), "done": .bool(t.done), "created_at": .string(Self.iso8601(t.createdAt))]
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` (UTC) without a formatter object: this runs for every todo listed.
    static func iso8601(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))Z"
    }

    static func result(_ text: String, structured: JSONValue) -> JSONValue {
        ["content": [["type": "text", "text": .string(text)]], "structuredContent": structured, "isError": false]
    }

    static func toolError(_ text: String) -> JSONValue {
        ["content": [["type": "text", "text": .string(text)]], "isError": true]
    }
}
