import SwitchboardJSON

/// One tool call as the page shows it (a chip).
struct ToolCallRecord: Codable, Sendable, Equatable {
    struct StepUp: Codable, Sendable, Equatable { var scopes: [String] }
    var id: String
    /// The name the model called.
    var name: String
    var connection: String
    /// The server's own tool name.
    var tool: String
    var arguments: JSONValue
    /// An MCP CallToolResult, a REST answer, or `{error, message}` when the call failed.
    var result: JSONValue
    var isError: Bool
    var durationMS: Int
    var stepUp: StepUp?

    enum CodingKeys: String, CodingKey {
        case id, name, connection, tool, arguments, result
        case isError = "is_error"
        case durationMS = "duration_ms"
        case stepUp = "step_up"
    }
}

/// A connection waiting for the user's consent.
struct ConsentCard: Codable, Sendable, Equatable {
    var id: String
    var connection: String
    var title: String
    var interactionURI: String
    /// A tool call waits for it (resume with `/api/chat/resume`); false: a server whose tools
    /// cannot be listed until consent.
    var waiting: Bool

    enum CodingKeys: String, CodingKey {
        case id, connection, title, waiting
        case interactionURI = "interaction_uri"
    }
}

/// What `POST /api/chat` and `/api/chat/resume` answer.
struct TurnAnswer: Codable, Sendable, Equatable {
    var message: String = ""
    var toolCalls: [ToolCallRecord] = []
    var consents: [ConsentCard] = []

    enum CodingKeys: String, CodingKey {
        case message
        case toolCalls = "tool_calls"
        case consents
    }

    mutating func say(_ text: String) {
        guard !text.isEmpty else { return }
        message += message.isEmpty ? text : "\n\n" + text
    }
}

/// One line of the conversation as shown (`GET /api/history`).
struct HistoryEntry: Codable, Sendable, Equatable {
    var role: String
    var text: String
    var toolCalls: [ToolCallRecord]?
    var consents: [ConsentCard]?

    enum CodingKeys: String, CodingKey {
        case role, text, consents
        case toolCalls = "tool_calls"
    }

    static func user(_ text: String) -> HistoryEntry { HistoryEntry(role: "user", text: text) }
    static func assistant(_ a: TurnAnswer) -> HistoryEntry { HistoryEntry(role: "assistant", text: a.message, toolCalls: a.toolCalls, consents: a.consents) }
}
