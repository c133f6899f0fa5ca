import Testing
@testable import LLMAdapter
import SwitchboardJSON

/// The offline planner's table: what a user types → the tool call it makes (or the question it
/// asks instead). The tools are the real ones: todo0's four and the ISV stand-in's two,
/// offered together as a client that connected both servers would.
enum PlannerTableFixture {
    /// Copied from Sources/Todo0/TodoTools.swift (TodoStore.maxTitleLength = 500).
    static let todoTools: [JSONValue] = [
        ["name": "get-todos", "description": "List the signed-in user's todos with their ids and whether each is done.",
         "input_schema": ["type": "object", "properties": [:], "additionalProperties": false]],
        ["name": "create-todo", "description": "Add a todo for the signed-in user.",
         "input_schema": ["type": "object", "properties": ["title": ["type": "string", "minLength": 1, "maxLength": 500, "description": "What to do"]],
                          "required": ["title"], "additionalProperties": false]],
        ["name": "toggle-todo", "description": "Flip a todo between done and not done, by id.",
         "input_schema": ["type": "object", "properties": ["id": ["type": "integer", "minimum": 1, "description": "The todo's id"]],
                          "required": ["id"], "additionalProperties": false]],
        ["name": "delete-todo", "description": "Delete a todo, by id.",
         "input_schema": ["type": "object", "properties": ["id": ["type": "integer", "minimum": 1, "description": "The todo's id"]],
                          "required": ["id"], "additionalProperties": false]],
    ]

    /// Copied from Sources/ISVStandIn/GitHubTools.swift.
    static let isvTools: [JSONValue] = [
        ["name": "add_pull_request_comment", "description": "Add a comment to a GitHub pull request.",
         "input_schema": ["type": "object", "properties": [
             "owner": ["type": "string", "description": "Repository owner, e.g. acme"],
             "repo": ["type": "string", "description": "Repository name, e.g. app"],
             "pull_number": ["type": "integer", "minimum": 1, "description": "Pull request number"],
             "body": ["type": "string", "minLength": 1, "description": "The comment text"],
         ], "required": ["owner", "repo", "pull_number", "body"]]],
        ["name": "get_me", "description": "The GitHub user the token acts for.", "input_schema": ["type": "object", "properties": [:]]],
    ]

    /// A server the planner has never heard of, added next to todo0.
    static let newServerTools: [JSONValue] = [
        ["name": "get_forecast", "description": "Weather forecast for a city",
         "input_schema": ["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"]]],
        ["name": "search_notes", "description": "Search the user's notes",
         "input_schema": ["type": "object", "properties": ["query": ["type": "string"]], "required": ["query"]]],
    ]

    static var allTools: [JSONValue] { todoTools + isvTools }

    static func request(_ prompt: String, tools: [JSONValue] = allTools, toolChoice: JSONValue? = nil) throws -> MessagesRequest {
        try request(messages: [["role": "user", "content": .string(prompt)]], tools: tools, toolChoice: toolChoice)
    }

    static func request(messages: [JSONValue], tools: [JSONValue] = allTools, toolChoice: JSONValue? = nil) throws -> MessagesRequest {
        var body: [String: JSONValue] = ["model": "switchboard-offline-planner", "max_tokens": 1024, "messages": .array(messages), "tools": .array(tools)]
        if let toolChoice { body["tool_choice"] = toolChoice }
        return try MessagesRequest(json: .object(body))
    }

    static func toolUses(_ plan: OfflinePlanner.Plan) -> [(name: String, input: JSONValue)] {
        plan.blocks.compactMap { block in
            if case .toolUse(_, let name, let input) = block { return (name, input) }
            return nil
        }
    }

    static func text(_ plan: OfflinePlanner.Plan) -> String {
        plan.blocks.compactMap { block in
            if case .text(let t) = block { return t }
            return nil
        }.joined(separator: "\n")
    }

    static func json(_ value: JSONValue) -> String { String(decoding: value.encoded(), as: UTF8.self) }
}

/// One row of the table: a prompt and the one call it must produce.
struct PlannerTableCase: Sendable, CustomTestStringConvertible {
    var prompt: String
    var tool: String
    var input: JSONValue
    var tools: [JSONValue] = PlannerTableFixture.allTools

    init(_ prompt: String, _ tool: String, _ input: JSONValue, tools: [JSONValue] = PlannerTableFixture.allTools) {
        self.prompt = prompt
        self.tool = tool
        self.input = input
        self.tools = tools
    }

    var testDescription: String { "\"\(prompt)\" → \(tool) \(PlannerTableFixture.json(input))" }

    /// The required rows.
    static let required: [PlannerTableCase] = [
        .init("list my todos", "get-todos", [:]),
        .init(#"add a todo "prep the demo""#, "create-todo", ["title": "prep the demo"]),
        .init("mark todo 2 as done", "toggle-todo", ["id": 2]),
        .init("delete todo 3", "delete-todo", ["id": 3]),
        .init(#"comment "LGTM" on https://github.com/acme/app/pull/1"#, "add_pull_request_comment",
              ["owner": "acme", "repo": "app", "pull_number": 1, "body": "LGTM"]),
    ]

    /// Other wordings a user would try, all handled today.
    static let wordings: [PlannerTableCase] = [
        // Listing.
        .init("show me my tasks", "get-todos", [:]),
        .init("what's on my todo list", "get-todos", [:]),
        .init("what’s on my todo list", "get-todos", [:]),
        .init("show my todos", "get-todos", [:]),
        .init("what are my todos?", "get-todos", [:]),
        .init("can you show me my todos?", "get-todos", [:]),
        .init("List my todos please", "get-todos", [:]),
        .init("show me my to-do list", "get-todos", [:]),
        .init("what tasks do I have", "get-todos", [:]),
        .init("todos", "get-todos", [:]),
        // Adding.
        .init("please create a to-do: “buy milk”", "create-todo", ["title": "buy milk"]),
        .init("add buy milk to my todos", "create-todo", ["title": "buy milk"]),
        .init("add a todo “prep the demo”", "create-todo", ["title": "prep the demo"]),
        .init("add a todo 'prep the demo'", "create-todo", ["title": "prep the demo"]),
        .init(#"ADD A TODO "PREP THE DEMO""#, "create-todo", ["title": "PREP THE DEMO"]),
        .init(#"create a todo called "call mom""#, "create-todo", ["title": "call mom"]),
        .init(#"new todo: "call mom""#, "create-todo", ["title": "call mom"]),
        .init("add a task buy eggs", "create-todo", ["title": "buy eggs"]),
        .init("add todo buy milk and eggs", "create-todo", ["title": "buy milk and eggs"]),
        .init("Add a todo: Buy milk", "create-todo", ["title": "Buy milk"]),
        // Quoted words that sound like another intent stay the title.
        .init(#"add a todo "delete the file""#, "create-todo", ["title": "delete the file"]),
        .init(#"add a todo "buy 2 apples""#, "create-todo", ["title": "buy 2 apples"]),
        // Done / not done.
        .init("I finished todo 5", "toggle-todo", ["id": 5]),
        .init("mark task 2 as complete", "toggle-todo", ["id": 2]),
        .init("complete todo 2", "toggle-todo", ["id": 2]),
        .init("finish todo 2", "toggle-todo", ["id": 2]),
        .init("todo 2 is done", "toggle-todo", ["id": 2]),
        .init("mark todo #2 done", "toggle-todo", ["id": 2]),
        .init("complete task #2", "toggle-todo", ["id": 2]),
        .init("tick off todo 2", "toggle-todo", ["id": 2]),
        .init("toggle todo 2", "toggle-todo", ["id": 2]),
        .init("mark todo 2 as not done", "toggle-todo", ["id": 2]),
        .init("reopen todo 2", "toggle-todo", ["id": 2]),
        .init("done with todo 2", "toggle-todo", ["id": 2]),
        // Deleting.
        .init("remove todo #4", "delete-todo", ["id": 4]),
        .init("delete task 3", "delete-todo", ["id": 3]),
        .init("delete todo #3!", "delete-todo", ["id": 3]),
        .init("Please delete todo 3.", "delete-todo", ["id": 3]),
        .init("remove task 3", "delete-todo", ["id": 3]),
        .init("remove the todo 4", "delete-todo", ["id": 4]),
        .init("remove item 4 from my todos", "delete-todo", ["id": 4]),
        .init("trash todo 3", "delete-todo", ["id": 3]),
        .init("drop todo 3", "delete-todo", ["id": 3]),
        .init("cancel todo 3", "delete-todo", ["id": 3]),
        .init("delete the todo with id 3", "delete-todo", ["id": 3]),
        .init("delete todo number 3", "delete-todo", ["id": 3]),
        .init("call delete-todo with id 3", "delete-todo", ["id": 3]),
        // Pull request comments: curly and single quotes, shorthand, trailing punctuation, other URL shapes.
        .init(#"comment "LGTM" on acme/app#7"#, "add_pull_request_comment", ["owner": "acme", "repo": "app", "pull_number": 7, "body": "LGTM"]),
        .init("comment “ship it” on https://github.com/acme/app/pull/12", "add_pull_request_comment",
              ["owner": "acme", "repo": "app", "pull_number": 12, "body": "ship it"]),
        .init("comment 'LGTM' on https://github.com/acme/app/pull/1", "add_pull_request_comment",
              ["owner": "acme", "repo": "app", "pull_number": 1, "body": "LGTM"]),
        .init(#"comment "LGTM" on https://github.com/acme/app/pull/1."#, "add_pull_request_comment",
              ["owner": "acme", "repo": "app", "pull_number": 1, "body": "LGTM"]),
        .init(#"comment "LGTM" on https://github.com/acme/app/pull/1/files"#, "add_pull_request_comment",
              ["owner": "acme", "repo": "app", "pull_number": 1, "body": "LGTM"]),
        .init("comment LGTM on https://github.com/acme/app/pull/1", "add_pull_request_comment",
              ["owner": "acme", "repo": "app", "pull_number": 1, "body": "LGTM"]),
        .init(#"leave a comment "LGTM" on https://github.com/acme/app/pull/1"#, "add_pull_request_comment",
              ["owner": "acme", "repo": "app", "pull_number": 1, "body": "LGTM"]),
        .init(#"reply "LGTM" to https://github.com/acme/app/pull/1"#, "add_pull_request_comment",
              ["owner": "acme", "repo": "app", "pull_number": 1, "body": "LGTM"]),
        .init(#"add a comment "nice" to PR acme/app#3"#, "add_pull_request_comment",
              ["owner": "acme", "repo": "app", "pull_number": 3, "body": "nice"]),
        .init(#"comment on acme/app#7: "looks good""#, "add_pull_request_comment",
              ["owner": "acme", "repo": "app", "pull_number": 7, "body": "looks good"]),
        .init(#"comment "LGTM, ship it" on acme/app#7"#, "add_pull_request_comment",
              ["owner": "acme", "repo": "app", "pull_number": 7, "body": "LGTM, ship it"]),
        .init(#"comment "fix the bug in line 3" on acme/app#7"#, "add_pull_request_comment",
              ["owner": "acme", "repo": "app", "pull_number": 7, "body": "fix the bug in line 3"]),
        // Identity on GitHub; the tool named outright.
        .init("who am I on GitHub", "get_me", [:]),
        .init("get_me", "get_me", [:]),
        .init("use get-todos", "get-todos", [:]),
    ]

    /// A newly added MCP server's tools, found by their words alone.
    static let newServer: [PlannerTableCase] = {
        let tools = PlannerTableFixture.todoTools + PlannerTableFixture.newServerTools
        return [
            .init("what's the weather forecast for Berlin", "get_forecast", ["city": "Berlin"], tools: tools),
            .init(#"search my notes for "budget""#, "search_notes", ["query": "budget"], tools: tools),
            .init("what's the weather in Berlin", "get_forecast", ["city": "Berlin"], tools: tools),
            .init("forecast for Berlin", "get_forecast", ["city": "Berlin"], tools: tools),
            .init(#"what's the weather forecast for "New York""#, "get_forecast", ["city": "New York"], tools: tools),
            .init("search my notes for budget", "search_notes", ["query": "budget"], tools: tools),
            .init(#"find "budget" in my notes"#, "search_notes", ["query": "budget"], tools: tools),
            .init("look up budget in my notes", "search_notes", ["query": "budget"], tools: tools),
            // The todo tools still work next to the new ones.
            .init("list my todos", "get-todos", [:], tools: tools),
            .init(#"add a todo "prep the demo""#, "create-todo", ["title": "prep the demo"], tools: tools),
            .init("delete todo 3", "delete-todo", ["id": 3], tools: tools),
        ]
    }()

    /// Wordings an earlier planner misread (fixed: phrases such as "get rid of", the first
    /// verb leads, a verb alone decides when one tool holds the best verb score, `who am i`).
    static let misread: [PlannerTableCase] = [
        // "list" (verb:list) outscores "add": the call is get-todos.
        .init("add call mom to my todo list", "create-todo", ["title": "call mom"]),
        .init(#"add "call mom" to my todo list"#, "create-todo", ["title": "call mom"]),
        // "check" and "get rid of" are not verbs the planner knows; "get" makes them a listing.
        .init("check off todo #2", "toggle-todo", ["id": 2]),
        .init("get rid of todo 3", "delete-todo", ["id": 3]),
        // No noun and no match at all.
        .init("mark 2 done", "toggle-todo", ["id": 2]),
        .init("mark #2 as done", "toggle-todo", ["id": 2]),
        .init("who am i", "get_me", [:]),
        .init(#"remind me to "call mom""#, "create-todo", ["title": "call mom"]),
        .init(#"post "LGTM" on acme/app#1"#, "add_pull_request_comment", ["owner": "acme", "repo": "app", "pull_number": 1, "body": "LGTM"]),
        // "todo:" reads as a listing.
        .init("todo: buy eggs", "create-todo", ["title": "buy eggs"]),
    ]
}

@Suite("Offline planner: prompts → tool calls")
struct PlannerTableTests {
    static func check(_ row: PlannerTableCase, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let plan = OfflinePlanner().plan(try PlannerTableFixture.request(row.prompt, tools: row.tools))
        let uses = PlannerTableFixture.toolUses(plan)
        try #require(uses.count == 1, "expected one tool_use, got: \(PlannerTableFixture.text(plan))", sourceLocation: sourceLocation)
        #expect(uses[0].name == row.tool, sourceLocation: sourceLocation)
        #expect(uses[0].input == row.input, "input \(PlannerTableFixture.json(uses[0].input))", sourceLocation: sourceLocation)
        #expect(plan.stopReason == "tool_use", sourceLocation: sourceLocation)
        // The tool_use block comes last, after a short text saying what it does.
        if case .toolUse? = plan.blocks.last {} else { Issue.record("the last block is not the tool_use", sourceLocation: sourceLocation) }
    }

    @Test("required rows", arguments: PlannerTableCase.required)
    func requiredRows(_ row: PlannerTableCase) throws { try Self.check(row) }

    @Test("other wordings", arguments: PlannerTableCase.wordings)
    func otherWordings(_ row: PlannerTableCase) throws { try Self.check(row) }

    @Test("a newly added server's tools, named in plain words", arguments: PlannerTableCase.newServer)
    func newServerTools(_ row: PlannerTableCase) throws { try Self.check(row) }

    @Test("wordings an earlier planner misread", arguments: PlannerTableCase.misread)
    func misreadWordings(_ row: PlannerTableCase) throws { try Self.check(row) }

    // MARK: - Asking instead of calling

    struct Missing: Sendable, CustomTestStringConvertible {
        var prompt: String
        var tool: String
        /// Words the question must contain (the argument's name).
        var mentions: [String]
        var testDescription: String { prompt }
    }

    @Test("a missing or refused argument: no call, a question that names it", arguments: [
        Missing(prompt: "add a todo", tool: "create-todo", mentions: ["title"]),
        Missing(prompt: "mark todo as done", tool: "toggle-todo", mentions: ["id"]),
        Missing(prompt: "delete todo", tool: "delete-todo", mentions: ["id"]),
        Missing(prompt: "comment on https://github.com/acme/app/pull/1", tool: "add_pull_request_comment", mentions: ["body"]),
        Missing(prompt: #"comment "" on https://github.com/acme/app/pull/1"#, tool: "add_pull_request_comment", mentions: ["body"]),
        Missing(prompt: "delete todo 0", tool: "delete-todo", mentions: ["id", "at least 1"]),
        Missing(prompt: #"comment "LGTM" on https://github.com/acme/app/pull/0"#, tool: "add_pull_request_comment", mentions: ["pull_number", "at least 1"]),
    ])
    func missingArgument(_ row: Missing) throws {
        let plan = OfflinePlanner().plan(try PlannerTableFixture.request(row.prompt))
        #expect(PlannerTableFixture.toolUses(plan).isEmpty)
        #expect(plan.stopReason == "end_turn")
        let text = PlannerTableFixture.text(plan)
        #expect(text.contains("`\(row.tool)`"), "\(text)")
        for word in row.mentions {
            // The argument's name as a word, not inside another one ("id" in "didn't").
            let asWord = text.contains(word + " ") || text.contains(word + ",") || text.contains(word + ".") || text.hasSuffix(word)
            #expect(asWord, "'\(word)' not named in: \(text)")
        }
    }

    @Test func missingArgumentsAreNamedWithTheirType() throws {
        let title = PlannerTableFixture.text(OfflinePlanner().plan(try PlannerTableFixture.request("add a todo")))
        #expect(title.contains("title (string)"))
        let id = PlannerTableFixture.text(OfflinePlanner().plan(try PlannerTableFixture.request("mark todo as done")))
        #expect(id.contains("id (integer)"))
        #expect(!id.contains("title"))
        let body = PlannerTableFixture.text(OfflinePlanner().plan(try PlannerTableFixture.request("comment on https://github.com/acme/app/pull/1")))
        #expect(body.contains("body (string)"))
        // owner, repo and pull_number came from the URL: only the body is asked for.
        #expect(!body.contains("owner") && !body.contains("pull_number") && !body.contains("repo ("))
    }

    @Test("new server: a missing city or query is asked for", arguments: [
        ("what's the weather forecast", "city"),
        ("search my notes", "query"),
    ])
    func newServerMissing(_ prompt: String, _ argument: String) throws {
        let plan = OfflinePlanner().plan(try PlannerTableFixture.request(prompt, tools: PlannerTableFixture.todoTools + PlannerTableFixture.newServerTools))
        #expect(PlannerTableFixture.toolUses(plan).isEmpty)
        #expect(PlannerTableFixture.text(plan).contains("\(argument) (string)"))
    }

    // MARK: - No tool fits, identity

    @Test func nothingFitsListsTheTools() throws {
        let plan = OfflinePlanner().plan(try PlannerTableFixture.request("book me a flight to Oslo"))
        #expect(PlannerTableFixture.toolUses(plan).isEmpty)
        #expect(plan.stopReason == "end_turn")
        let text = PlannerTableFixture.text(plan)
        for name in ["get-todos", "create-todo", "toggle-todo", "delete-todo", "add_pull_request_comment", "get_me"] {
            #expect(text.contains(name), "\(name) missing from: \(text)")
        }
        #expect(text.contains("book me a flight to Oslo"))
    }

    @Test(arguments: ["who are you?", "are you Claude?", "Who are you", "what model are you?"])
    func identity(_ prompt: String) throws {
        let plan = OfflinePlanner().plan(try PlannerTableFixture.request(prompt))
        #expect(PlannerTableFixture.toolUses(plan).isEmpty)
        #expect(plan.stopReason == "end_turn")
        let text = PlannerTableFixture.text(plan)
        #expect(text.contains("offline planner"))
        #expect(text.contains("not a language model"))
    }

    @Test func identityWithoutTools() throws {
        let plan = OfflinePlanner().plan(try PlannerTableFixture.request("are you Claude?", tools: []))
        #expect(PlannerTableFixture.text(plan).contains("offline planner"))
        #expect(!PlannerTableFixture.text(plan).contains("Tools I can use"))
    }

    // MARK: - After a tool result

    static func afterResult(tool: String = "get-todos", content: JSONValue, isError: Bool? = nil) throws -> OfflinePlanner.Plan {
        var result: [String: JSONValue] = ["type": "tool_result", "tool_use_id": "toolu_X", "content": content]
        if let isError { result["is_error"] = .bool(isError) }
        let messages: [JSONValue] = [
            ["role": "user", "content": "list my todos"],
            ["role": "assistant", "content": [
                ["type": "text", "text": "I'll use it."],
                ["type": "tool_use", "id": "toolu_X", "name": .string(tool), "input": [:]],
            ]],
            ["role": "user", "content": [.object(result)]],
        ]
        return OfflinePlanner().plan(try PlannerTableFixture.request(messages: messages))
    }

    @Test func toolResultIsSummarized() throws {
        let result = "You have 2 todos:\n- [x] prep the demo (id 1)\n- [ ] buy milk (id 2)"
        let plan = try Self.afterResult(content: .string(result))
        #expect(PlannerTableFixture.toolUses(plan).isEmpty)
        #expect(plan.stopReason == "end_turn")
        #expect(PlannerTableFixture.text(plan) == result)
    }

    @Test func toolResultAsTextBlocks() throws {
        let plan = try Self.afterResult(content: [["type": "text", "text": "Added todo 3: call mom"]])
        #expect(PlannerTableFixture.text(plan).contains("Added todo 3: call mom"))
        #expect(plan.stopReason == "end_turn")
    }

    @Test func errorResultSaysItFailed() throws {
        let plan = try Self.afterResult(tool: "toggle-todo", content: "There is no todo with id 9.", isError: true)
        #expect(PlannerTableFixture.toolUses(plan).isEmpty)
        #expect(plan.stopReason == "end_turn")
        let text = PlannerTableFixture.text(plan)
        #expect(text.contains("There is no todo with id 9."))
        #expect(text.contains("didn't work"))
        // It names the tool from the assistant's tool_use with that id.
        #expect(text.contains("`toggle-todo`"))
        // The same text without is_error is not reported as a failure.
        let ok = PlannerTableFixture.text(try Self.afterResult(tool: "toggle-todo", content: "There is no todo with id 9.", isError: false))
        #expect(!ok.contains("didn't work"))
    }

    @Test func jsonArrayResultIsReadable() throws {
        let plan = try Self.afterResult(content: #"[{"id":1,"title":"a","done":true},{"id":2,"title":"buy milk","done":false}]"#)
        let text = PlannerTableFixture.text(plan)
        #expect(plan.stopReason == "end_turn")
        #expect(!text.contains("{"), "raw JSON in: \(text)")
        #expect(text.contains("2 items"))
        #expect(text.contains("#1 a [done]"))
        #expect(text.contains("#2 buy milk [open]"))
    }

    @Test func jsonObjectWrappingAListIsReadable() throws {
        let text = PlannerTableFixture.text(try Self.afterResult(content: #"{"todos":[{"id":1,"title":"a","done":true}]}"#))
        #expect(text.contains("Todos: 1 item"))
        #expect(text.contains("#1 a [done]"))
        let empty = PlannerTableFixture.text(try Self.afterResult(content: "[]"))
        #expect(empty == "There's nothing there.")
    }

    // MARK: - Determinism and tool_choice

    @Test func sameRequestSamePlan() throws {
        let request = try PlannerTableFixture.request(#"add a todo "prep the demo""#)
        let first = OfflinePlanner().plan(request)
        let second = OfflinePlanner().plan(try PlannerTableFixture.request(#"add a todo "prep the demo""#))
        #expect(first == second)
        #expect(first == OfflinePlanner().plan(request))
        guard case .toolUse(let id, _, _)? = first.blocks.last else { Issue.record("no tool_use"); return }
        #expect(id.hasPrefix("toolu_"))
        // A different conversation gets a different id.
        guard case .toolUse(let other, _, _)? = OfflinePlanner().plan(try PlannerTableFixture.request(#"add a todo "prep the demos""#)).blocks.last
        else { Issue.record("no tool_use"); return }
        #expect(other != id)
    }

    @Test func toolChoiceNoneNeverCalls() throws {
        let plan = OfflinePlanner().plan(try PlannerTableFixture.request("list my todos", toolChoice: ["type": "none"]))
        #expect(PlannerTableFixture.toolUses(plan).isEmpty)
        #expect(plan.stopReason == "end_turn")
        #expect(PlannerTableFixture.text(plan).contains("turned off"))
    }

    @Test func toolChoiceToolForcesThatTool() throws {
        let plan = OfflinePlanner().plan(try PlannerTableFixture.request("book me a flight to Oslo", toolChoice: ["type": "tool", "name": "get-todos"]))
        let uses = PlannerTableFixture.toolUses(plan)
        try #require(uses.count == 1, "\(PlannerTableFixture.text(plan))")
        #expect(uses[0].name == "get-todos")
        #expect(uses[0].input == [:])
        #expect(plan.stopReason == "tool_use")
    }

    @Test func toolChoiceToolNarrowsTheChoice() throws {
        // Words that fit delete-todo, but only toggle-todo may be used.
        let plan = OfflinePlanner().plan(try PlannerTableFixture.request("delete todo 3", toolChoice: ["type": "tool", "name": "toggle-todo"]))
        let uses = PlannerTableFixture.toolUses(plan)
        try #require(uses.count == 1, "\(PlannerTableFixture.text(plan))")
        #expect(uses[0].name == "toggle-todo")
        #expect(uses[0].input == ["id": 3])
    }

    /// Was a defect (1.5 read as 1 and 5, the call went out with id 1); fixed in fbc7205.
    @Test(arguments: ["toggle todo 1.5", "delete todo 2.5."])
    func decimalIDIsRefused(_ prompt: String) throws {
        let plan = OfflinePlanner().plan(try PlannerTableFixture.request(prompt))
        #expect(PlannerTableFixture.toolUses(plan).isEmpty, "called \(PlannerTableFixture.toolUses(plan).map { "\($0.name) \(PlannerTableFixture.json($0.input))" })")
        #expect(PlannerTableFixture.text(plan).contains("id must be a whole number"))
    }

    @Test(arguments: ["thanks", "thank you!", "ok great"])
    func smallTalkCallsNothing(_ prompt: String) throws {
        let plan = OfflinePlanner().plan(try PlannerTableFixture.request(prompt))
        #expect(PlannerTableFixture.toolUses(plan).isEmpty)
        #expect(plan.stopReason == "end_turn")
        #expect(PlannerTableFixture.text(plan).contains("get-todos"))
    }
}

/// Defects in argument filling: the planner calls a tool, or asks, with the wrong arguments.
/// These fail today; see the report.
@Suite("Offline planner: argument defects")
struct PlannerArgumentDefectTests {
    @Test("BUG: numbers in an unquoted title are dropped")
    func unquotedTitleKeepsNumbers() throws {
        try PlannerTableTests.check(.init("create a todo: buy 2 apples", "create-todo", ["title": "buy 2 apples"]))
    }

    @Test("BUG: 'New' in a city name is taken for the verb 'new'")
    func cityNameWithNew() throws {
        let tools = PlannerTableFixture.todoTools + PlannerTableFixture.newServerTools
        try PlannerTableTests.check(.init("what's the weather forecast for New York", "get_forecast", ["city": "New York"], tools: tools))
    }

    @Test("BUG: 'GitHub' in a description is split into 'git' + 'hub', so 'github' typed in lower case matches nothing",
          arguments: ["what's my github username", "show me my github profile"])
    func lowerCaseGitHub(_ prompt: String) throws {
        try PlannerTableTests.check(.init(prompt, "get_me", [:]))
    }

    @Test("BUG: with no owner/repo reference, the quoted comment is taken as the owner and the body is asked for",
          arguments: [
              #"comment "LGTM" on pull request 1 in acme/app"#,
              #"comment "LGTM" on acme/app PR #7"#,
              #"comment "LGTM" on github.com/acme/app/pull/1"#,
          ])
    func quotedBodyIsNotTheOwner(_ prompt: String) throws {
        let plan = OfflinePlanner().plan(try PlannerTableFixture.request(prompt))
        let text = PlannerTableFixture.text(plan)
        // Whatever it does, it must not ask for a body the user quoted.
        #expect(!text.contains("body (string)"), "\(text)")
    }

    @Test("BUG: the argument filler puts the quoted comment into owner when the sentence has no owner/repo reference")
    func fillerOwnerFromQuote() throws {
        let schema = try #require(PlannerTableFixture.isvTools[0]["input_schema"]?.object)
        let result = ArgumentFiller().fill(schema: schema, utterance: Utterance(#"comment "LGTM" on pull request 1 in acme/app"#), freeText: nil)
        #expect(result.input["owner"] != "LGTM", "owner = \(PlannerTableFixture.json(result.input["owner"] ?? .null))")
    }
}

@Suite("Offline planner: greetings")
struct PlannerGreetingTests {
    @Test("a greeting alone is answered with the tools; a greeting with a request acts on the request")
    func greetings() throws {
        let hello = OfflinePlanner().plan(try PlannerTableFixture.request("hi"))
        #expect(PlannerTableFixture.toolUses(hello).isEmpty)
        #expect(PlannerTableFixture.text(hello).contains("get-todos"))
        let helloNoTools = OfflinePlanner().plan(try PlannerTableFixture.request("hello", tools: []))
        #expect(PlannerTableFixture.text(helloNoTools).hasPrefix("Hello"))
        let busy = OfflinePlanner().plan(try PlannerTableFixture.request("hi, list my todos"))
        #expect(PlannerTableFixture.toolUses(busy).map(\.name) == ["get-todos"])
    }

    @Test("several ids for the one required number: one call each")
    func severalIDs() throws {
        let plan = OfflinePlanner().plan(try PlannerTableFixture.request("delete todos 3 and 4"))
        let uses = PlannerTableFixture.toolUses(plan)
        #expect(uses.map(\.name) == ["delete-todo", "delete-todo"])
        #expect(uses.map(\.input) == [["id": 3], ["id": 4]])
        let ids = plan.blocks.compactMap { block -> String? in if case .toolUse(let id, _, _) = block { return id } else { return nil } }
        #expect(Set(ids).count == 2, "tool_use ids must differ")
    }
}
