import SwitchboardJSON

/// A validated `POST /v1/messages` body. `body` keeps every field the client sent (the remote
/// backends forward it); the typed fields are what the adapter and the offline planner read.
struct MessagesRequest: Sendable {
    var body: [String: JSONValue]
    var model: String
    var maxTokens: Int
    var stream: Bool
    var system: String
    var messages: [Message]
    var tools: [Tool]
    var toolChoice: ToolChoice
    /// `anthropic-version` / `anthropic-beta` as the client sent them (forwarded upstream).
    var clientHeaders = ClientHeaders()

    struct ClientHeaders: Sendable, Equatable {
        var version: String?
        var beta: String?
    }

    struct Message: Sendable, Equatable {
        var role: Role
        var blocks: [Block]
    }

    enum Role: String, Sendable { case user, assistant }

    enum Block: Sendable, Equatable {
        case text(String)
        case toolUse(id: String, name: String, input: JSONValue)
        case toolResult(toolUseID: String, text: String, isError: Bool)
        /// Images, documents, thinking…: kept by the remote backends, ignored by the planner.
        case other(type: String)
    }

    struct Tool: Sendable, Equatable {
        var name: String
        var description: String
        var inputSchema: [String: JSONValue]
    }

    enum ToolChoice: Sendable, Equatable {
        case auto, any, none
        case tool(String)
    }

    /// Validates the body the way the Messages API does; every failure names the field.
    init(json: JSONValue) throws(LLMError) {
        guard case .object(let body) = json else { throw .invalidRequest("the request body must be a JSON object") }
        self.body = body
        guard let model = body["model"]?.string, !model.isEmpty else { throw .invalidRequest("model: a non-empty string is required") }
        self.model = model
        guard let maxTokens = body["max_tokens"]?.integer else { throw .invalidRequest("max_tokens: a whole number is required") }
        guard maxTokens >= 1 else { throw .invalidRequest("max_tokens: must be at least 1") }
        self.maxTokens = maxTokens
        switch body["stream"] {
        case nil, .null?: stream = false
        case .bool(let b)?: stream = b
        default: throw .invalidRequest("stream: must be a boolean")
        }
        system = try Self.systemText(body["system"])
        guard case .array(let rawMessages)? = body["messages"] else { throw .invalidRequest("messages: an array is required") }
        guard !rawMessages.isEmpty else { throw .invalidRequest("messages: at least one message is required") }
        var messages: [Message] = []
        messages.reserveCapacity(rawMessages.count)
        for (index, raw) in rawMessages.enumerated() {
            messages.append(try Self.message(raw, at: index))
        }
        self.messages = messages
        switch body["tools"] {
        case nil, .null?: tools = []
        case .array(let rawTools)?:
            var tools: [Tool] = []
            var seen = Set<String>()
            for (index, raw) in rawTools.enumerated() {
                let tool = try Self.tool(raw, at: index)
                guard seen.insert(tool.name).inserted else { throw .invalidRequest("tools.\(index).name: '\(tool.name)' is offered twice") }
                tools.append(tool)
            }
            self.tools = tools
        default: throw .invalidRequest("tools: must be an array")
        }
        toolChoice = try Self.toolChoice(body["tool_choice"], tools: tools)
    }

    /// The text of the last user turn (text blocks only).
    var lastUserText: String? {
        guard let last = messages.last, last.role == .user else { return nil }
        let texts = last.blocks.compactMap { block -> String? in if case .text(let t) = block { return t } else { return nil } }
        return texts.isEmpty ? nil : texts.joined(separator: "\n")
    }

    private static func systemText(_ value: JSONValue?) throws(LLMError) -> String {
        switch value {
        case nil, .null?: return ""
        case .string(let s)?: return s
        case .array(let blocks)?:
            var parts: [String] = []
            for (i, block) in blocks.enumerated() {
                guard block["type"]?.string == "text", let text = block["text"]?.string else {
                    throw .invalidRequest("system.\(i): only text blocks are allowed in system")
                }
                parts.append(text)
            }
            return parts.joined(separator: "\n")
        default: throw .invalidRequest("system: must be a string or an array of text blocks")
        }
    }

    private static func message(_ raw: JSONValue, at index: Int) throws(LLMError) -> Message {
        guard case .object(let object) = raw else { throw .invalidRequest("messages.\(index): must be an object") }
        guard let roleName = object["role"]?.string, let role = Role(rawValue: roleName) else {
            throw .invalidRequest("messages.\(index).role: must be \"user\" or \"assistant\"")
        }
        switch object["content"] {
        case .string(let text)?:
            return Message(role: role, blocks: [.text(text)])
        case .array(let rawBlocks)?:
            var blocks: [Block] = []
            for (b, rawBlock) in rawBlocks.enumerated() {
                blocks.append(try block(rawBlock, path: "messages.\(index).content.\(b)", role: role))
            }
            return Message(role: role, blocks: blocks)
        default:
            throw .invalidRequest("messages.\(index).content: must be a string or an array of content blocks")
        }
    }

    private static func block(_ raw: JSONValue, path: String, role: Role) throws(LLMError) -> Block {
        guard let type = raw["type"]?.string else { throw .invalidRequest("\(path).type: a content block needs a type") }
        switch type {
        case "text":
            guard let text = raw["text"]?.string else { throw .invalidRequest("\(path).text: a string is required") }
            return .text(text)
        case "tool_use":
            guard role == .assistant else { throw .invalidRequest("\(path): tool_use blocks belong to assistant messages") }
            guard let id = raw["id"]?.string, !id.isEmpty else { throw .invalidRequest("\(path).id: a string is required") }
            guard let name = raw["name"]?.string, !name.isEmpty else { throw .invalidRequest("\(path).name: a string is required") }
            guard let input = raw["input"], input.object != nil else { throw .invalidRequest("\(path).input: an object is required") }
            return .toolUse(id: id, name: name, input: input)
        case "tool_result":
            guard role == .user else { throw .invalidRequest("\(path): tool_result blocks belong to user messages") }
            guard let id = raw["tool_use_id"]?.string, !id.isEmpty else { throw .invalidRequest("\(path).tool_use_id: a string is required") }
            let isError: Bool
            switch raw["is_error"] {
            case nil, .null?: isError = false
            case .bool(let b)?: isError = b
            default: throw .invalidRequest("\(path).is_error: must be a boolean")
            }
            let text: String
            switch raw["content"] {
            case nil, .null?: text = ""
            case .string(let s)?: text = s
            case .array(let parts)?:
                text = parts.compactMap { $0["type"]?.string == "text" ? $0["text"]?.string : nil }.joined(separator: "\n")
            default: throw .invalidRequest("\(path).content: must be a string or an array of blocks")
            }
            return .toolResult(toolUseID: id, text: text, isError: isError)
        default:
            return .other(type: type)
        }
    }

    private static func tool(_ raw: JSONValue, at index: Int) throws(LLMError) -> Tool {
        guard case .object(let object) = raw else { throw .invalidRequest("tools.\(index): must be an object") }
        guard let name = object["name"]?.string, Self.isValidToolName(name) else {
            throw .invalidRequest("tools.\(index).name: 1–128 characters of letters, digits, '_' or '-' are required")
        }
        // Server tools (web search…) carry a `type` and no schema; the planner cannot run them.
        if let type = object["type"]?.string, type != "custom" {
            return Tool(name: name, description: "", inputSchema: ["type": "object", "x-server-tool": .string(type)])
        }
        guard case .object(let schema)? = object["input_schema"] else { throw .invalidRequest("tools.\(index).input_schema: an object is required") }
        if let type = schema["type"], type != "object" { throw .invalidRequest("tools.\(index).input_schema.type: must be \"object\"") }
        let description: String
        switch object["description"] {
        case nil, .null?: description = ""
        case .string(let s)?: description = s
        default: throw .invalidRequest("tools.\(index).description: must be a string")
        }
        return Tool(name: name, description: description, inputSchema: schema)
    }

    private static func toolChoice(_ raw: JSONValue?, tools: [Tool]) throws(LLMError) -> ToolChoice {
        guard let raw, raw != .null else { return .auto }
        switch raw["type"]?.string {
        case "auto"?: return .auto
        case "any"?: return .any
        case "none"?: return .none
        case "tool"?:
            guard let name = raw["name"]?.string, tools.contains(where: { $0.name == name }) else {
                throw .invalidRequest("tool_choice.name: must name one of the tools offered")
            }
            return .tool(name)
        default: throw .invalidRequest("tool_choice.type: must be auto, any, tool or none")
        }
    }

    static func isValidToolName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128
            && name.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 95 || $0 == 45 }
    }
}
