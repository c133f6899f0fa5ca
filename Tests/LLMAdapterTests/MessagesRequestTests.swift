import Testing
@testable import LLMAdapter
import SwitchboardJSON

@Suite("MessagesRequest validation")
struct MessagesRequestTests {
    static let tool: JSONValue = [
        "name": "get-todos", "description": "List todos", "input_schema": ["type": "object", "properties": [:]],
    ]

    /// A valid body, changed by `edit`.
    static func body(_ edit: (inout [String: JSONValue]) -> Void = { _ in }) -> JSONValue {
        var body: [String: JSONValue] = [
            "model": "claude-sonnet-4-5", "max_tokens": 256, "messages": [["role": "user", "content": "hi"]], "tools": [tool],
        ]
        edit(&body)
        return .object(body)
    }

    struct Rejected: Sendable, CustomTestStringConvertible {
        var name: String
        var body: JSONValue
        /// The field the message must name.
        var field: String
        var testDescription: String { name }
    }

    static let rejected: [Rejected] = [
        Rejected(name: "not an object", body: ["model"], field: "the request body"),
        Rejected(name: "missing model", body: body { $0["model"] = nil }, field: "model"),
        Rejected(name: "empty model", body: body { $0["model"] = "" }, field: "model"),
        Rejected(name: "model not a string", body: body { $0["model"] = 3 }, field: "model"),
        Rejected(name: "max_tokens 0", body: body { $0["max_tokens"] = 0 }, field: "max_tokens"),
        Rejected(name: "max_tokens -1", body: body { $0["max_tokens"] = -1 }, field: "max_tokens"),
        Rejected(name: "max_tokens \"10\"", body: body { $0["max_tokens"] = "10" }, field: "max_tokens"),
        Rejected(name: "max_tokens 1.5", body: body { $0["max_tokens"] = .number(1.5) }, field: "max_tokens"),
        Rejected(name: "missing max_tokens", body: body { $0["max_tokens"] = nil }, field: "max_tokens"),
        Rejected(name: "messages empty", body: body { $0["messages"] = [] }, field: "messages"),
        Rejected(name: "messages not an array", body: body { $0["messages"] = ["role": "user", "content": "hi"] }, field: "messages"),
        Rejected(name: "messages missing", body: body { $0["messages"] = nil }, field: "messages"),
        Rejected(name: "message not an object", body: body { $0["messages"] = ["hi"] }, field: "messages.0"),
        Rejected(name: "bad role", body: body { $0["messages"] = [["role": "system", "content": "hi"]] }, field: "messages.0.role"),
        Rejected(name: "missing role", body: body { $0["messages"] = [["content": "hi"]] }, field: "messages.0.role"),
        Rejected(name: "content a number", body: body { $0["messages"] = [["role": "user", "content": 5]] }, field: "messages.0.content"),
        Rejected(name: "content an object", body: body { $0["messages"] = [["role": "user", "content": ["type": "text", "text": "hi"]]] },
                 field: "messages.0.content"),
        Rejected(name: "content missing", body: body { $0["messages"] = [["role": "user"]] }, field: "messages.0.content"),
        Rejected(name: "block without type", body: body { $0["messages"] = [["role": "user", "content": [["text": "hi"]]]] },
                 field: "messages.0.content.0.type"),
        Rejected(name: "text block without text", body: body { $0["messages"] = [["role": "user", "content": [["type": "text"]]]] },
                 field: "messages.0.content.0.text"),
        Rejected(name: "tool_use in a user message", body: body {
            $0["messages"] = [["role": "user", "content": [["type": "tool_use", "id": "t1", "name": "get-todos", "input": [:]]]]]
        }, field: "messages.0.content.0"),
        Rejected(name: "tool_use without input object", body: body {
            $0["messages"] = [
                ["role": "user", "content": "hi"],
                ["role": "assistant", "content": [["type": "tool_use", "id": "t1", "name": "get-todos", "input": "x"]]],
            ]
        }, field: "messages.1.content.0.input"),
        Rejected(name: "tool_result in an assistant message", body: body {
            $0["messages"] = [["role": "assistant", "content": [["type": "tool_result", "tool_use_id": "t1", "content": "ok"]]]]
        }, field: "messages.0.content.0"),
        Rejected(name: "tool_result without tool_use_id", body: body {
            $0["messages"] = [
                ["role": "user", "content": "hi"],
                ["role": "assistant", "content": [["type": "tool_use", "id": "t1", "name": "get-todos", "input": [:]]]],
                ["role": "user", "content": [["type": "tool_result", "content": "ok"]]],
            ]
        }, field: "messages.2.content.0.tool_use_id"),
        Rejected(name: "tool_result is_error a string", body: body {
            $0["messages"] = [["role": "user", "content": [["type": "tool_result", "tool_use_id": "t1", "content": "ok", "is_error": "yes"]]]]
        }, field: "messages.0.content.0.is_error"),
        Rejected(name: "tool with bad name", body: body {
            $0["tools"] = [["name": "bad name!", "input_schema": ["type": "object"]]]
        }, field: "tools.0.name"),
        Rejected(name: "tool name too long", body: body {
            $0["tools"] = [["name": .string(String(repeating: "a", count: 129)), "input_schema": ["type": "object"]]]
        }, field: "tools.0.name"),
        Rejected(name: "tool without input_schema", body: body { $0["tools"] = [["name": "x"]] }, field: "tools.0.input_schema"),
        Rejected(name: "input_schema type array", body: body {
            $0["tools"] = [["name": "x", "input_schema": ["type": "array", "items": ["type": "string"]]]]
        }, field: "tools.0.input_schema.type"),
        Rejected(name: "tool description a number", body: body {
            $0["tools"] = [["name": "x", "description": 1, "input_schema": ["type": "object"]]]
        }, field: "tools.0.description"),
        Rejected(name: "duplicate tool names", body: body { $0["tools"] = [tool, tool] }, field: "tools.1.name"),
        Rejected(name: "tools not an array", body: body { $0["tools"] = tool }, field: "tools"),
        Rejected(name: "tool_choice naming an unknown tool", body: body { $0["tool_choice"] = ["type": "tool", "name": "create-todo"] },
                 field: "tool_choice.name"),
        Rejected(name: "tool_choice bad type", body: body { $0["tool_choice"] = ["type": "sometimes"] }, field: "tool_choice.type"),
        Rejected(name: "stream \"yes\"", body: body { $0["stream"] = "yes" }, field: "stream"),
        Rejected(name: "system a number", body: body { $0["system"] = 1 }, field: "system"),
        Rejected(name: "system with an image block", body: body { $0["system"] = [["type": "image"]] }, field: "system.0"),
    ]

    @Test("rejected with 400 and the field named", arguments: rejected)
    func rejects(_ row: Rejected) {
        do throws(LLMError) {
            let request = try MessagesRequest(json: row.body)
            Issue.record("accepted: model \(request.model), \(request.messages.count) messages")
        } catch {
            #expect(error.status == 400)
            #expect(error.type == "invalid_request_error")
            #expect(error.message.hasPrefix(row.field), "\(error.message)")
        }
    }

    @Test func theBaseBodyIsValid() throws {
        // So every rejection above is caused by its own change.
        let request = try MessagesRequest(json: Self.body())
        #expect(request.model == "claude-sonnet-4-5")
    }

    @Test func stringContent() throws {
        let request = try MessagesRequest(json: Self.body { $0["system"] = "Be brief." })
        #expect(request.model == "claude-sonnet-4-5")
        #expect(request.maxTokens == 256)
        #expect(request.stream == false)
        #expect(request.system == "Be brief.")
        #expect(request.messages == [.init(role: .user, blocks: [.text("hi")])])
        #expect(request.tools == [.init(name: "get-todos", description: "List todos", inputSchema: ["type": "object", "properties": [:]])])
        #expect(request.toolChoice == .auto)
        #expect(request.lastUserText == "hi")
        // Everything the client sent is kept for the remote backends.
        #expect(request.body["system"] == "Be brief.")
    }

    @Test func blockContent() throws {
        let request = try MessagesRequest(json: Self.body {
            $0["stream"] = true
            $0["system"] = [["type": "text", "text": "Be brief."], ["type": "text", "text": "Use tools."]]
            $0["tool_choice"] = ["type": "tool", "name": "get-todos"]
            $0["messages"] = [
                ["role": "user", "content": [["type": "text", "text": "list"], ["type": "text", "text": "my todos"]]],
                ["role": "assistant", "content": [
                    ["type": "text", "text": "Sure."],
                    ["type": "tool_use", "id": "toolu_1", "name": "get-todos", "input": ["all": true]],
                ]],
                ["role": "user", "content": [
                    ["type": "tool_result", "tool_use_id": "toolu_1", "content": [["type": "text", "text": "a"], ["type": "image"], ["type": "text", "text": "b"]]],
                    ["type": "tool_result", "tool_use_id": "toolu_2", "is_error": true, "content": "boom"],
                    ["type": "tool_result", "tool_use_id": "toolu_3"],
                    ["type": "image", "source": ["type": "base64", "media_type": "image/png", "data": ""]],
                ]],
            ]
        })
        #expect(request.stream)
        #expect(request.system == "Be brief.\nUse tools.")
        #expect(request.toolChoice == .tool("get-todos"))
        #expect(request.messages == [
            .init(role: .user, blocks: [.text("list"), .text("my todos")]),
            .init(role: .assistant, blocks: [.text("Sure."), .toolUse(id: "toolu_1", name: "get-todos", input: ["all": true])]),
            .init(role: .user, blocks: [
                .toolResult(toolUseID: "toolu_1", text: "a\nb", isError: false),
                .toolResult(toolUseID: "toolu_2", text: "boom", isError: true),
                .toolResult(toolUseID: "toolu_3", text: "", isError: false),
                .other(type: "image"),
            ]),
        ])
        // The last turn has no text blocks.
        #expect(request.lastUserText == nil)
    }

    @Test func lastUserTextJoinsTextBlocks() throws {
        let request = try MessagesRequest(json: Self.body {
            $0["messages"] = [["role": "user", "content": [["type": "text", "text": "list"], ["type": "text", "text": "my todos"]]]]
        })
        #expect(request.lastUserText == "list\nmy todos")
    }

    static let choices: [(JSONValue, MessagesRequest.ToolChoice)] = [
        (.null, .auto), (["type": "auto"], .auto), (["type": "any"], .any), (["type": "none"], .none),
    ]

    @Test(arguments: choices)
    func toolChoices(_ raw: JSONValue, _ expected: MessagesRequest.ToolChoice) throws {
        let request = try MessagesRequest(json: Self.body { $0["tool_choice"] = raw })
        #expect(request.toolChoice == expected)
    }

    @Test func serverToolsNeedNoSchema() throws {
        let request = try MessagesRequest(json: Self.body {
            $0["tools"] = [Self.tool, ["type": "web_search_20250305", "name": "web_search"], ["type": "custom", "name": "c", "input_schema": ["type": "object"]]]
        })
        #expect(request.tools.map(\.name) == ["get-todos", "web_search", "c"])
        #expect(request.tools[1].inputSchema["x-server-tool"] == "web_search_20250305")
        #expect(request.tools[2].inputSchema["x-server-tool"] == nil)
    }

    @Test func nullOptionalFieldsAreDefaults() throws {
        let request = try MessagesRequest(json: Self.body {
            $0["stream"] = .null
            $0["system"] = .null
            $0["tools"] = .null
        })
        #expect(request.stream == false)
        #expect(request.system == "")
        #expect(request.tools.isEmpty)
    }

    @Test(arguments: ["get-todos", "add_pull_request_comment", "A1", String(repeating: "x", count: 128)])
    func validToolNames(_ name: String) { #expect(MessagesRequest.isValidToolName(name)) }

    @Test(arguments: ["", "bad name!", "dot.name", "slash/name", "é", String(repeating: "x", count: 129)])
    func invalidToolNames(_ name: String) { #expect(!MessagesRequest.isValidToolName(name)) }
}
