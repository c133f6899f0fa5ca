import SwitchboardJSON

/// A tool call the model asked for.
struct ToolUse: Sendable, Equatable {
    var id: String
    var name: String
    var input: JSONValue
}

/// A turn stopped at a call that needs the user's consent; `/api/chat/resume` goes on from here.
struct ConsentPause: Sendable {
    var consent: ConsentCard
    var waiting: ToolUse
    /// The calls of the same model answer after the waiting one, not run yet.
    var remaining: [ToolUse]
    /// `tool_result` blocks of the calls of that answer already run.
    var results: [JSONValue]
    var roundsUsed: Int
    var catalog: ToolCatalog
}

/// One user's conversation: the model's context (Anthropic messages), what the page shows,
/// and the MCP sessions and consent notices that belong to it. A value: a turn works on a copy
/// and stores it back whole, so a failed turn leaves nothing half done.
struct ConversationState: Sendable {
    var messages: [JSONValue] = []
    /// Where each turn (a user's message) starts in `messages`.
    var turnStarts: [Int] = []
    var display: [HistoryEntry] = []
    var mcpSessions: [String: MCPSessionState] = [:]
    /// Connections whose tools could not be listed for want of consent, already reported.
    var listConsentsShown: Set<String> = []
    var pause: ConsentPause?

    /// Starts a turn with the user's words. A call still waiting for consent is answered
    /// first, with an error (the user moved on): never a tool_use without its tool_result.
    mutating func beginTurn(_ text: String) {
        var content: [JSONValue] = []
        if let pause {
            content = pause.results
            for use in [pause.waiting] + pause.remaining {
                content.append(Self.toolResult(use.id, "Not run: \(pause.consent.title) was not connected (the user did not give consent).", isError: true))
            }
            self.pause = nil
        }
        content.append(["type": "text", "text": .string(text)])
        turnStarts.append(messages.count)
        messages.append(["role": "user", "content": .array(content)])
        display.append(.user(text))
    }

    /// Keeps the last `maxTurns` turns (and at most 400 shown entries). Cuts only at turn starts
    /// and drops tool_result blocks whose tool_use went with the cut.
    mutating func trim(maxTurns: Int) {
        if display.count > 400 { display.removeFirst(display.count - 400) }
        guard turnStarts.count > maxTurns else { return }
        let cut = turnStarts[turnStarts.count - maxTurns]
        messages.removeFirst(cut)
        turnStarts = turnStarts.suffix(maxTurns).map { $0 - cut }
        if case .object(var first) = messages[0], let blocks = first["content"]?.array {
            let kept = blocks.filter { $0["type"]?.string != "tool_result" }
            first["content"] = .array(kept.isEmpty ? [["type": "text", "text": "(earlier conversation trimmed)"]] : kept)
            messages[0] = .object(first)
        }
    }

    static func toolResult(_ id: String, _ text: String, isError: Bool) -> JSONValue {
        var block: [String: JSONValue] = ["type": "tool_result", "tool_use_id": .string(id), "content": .string(text)]
        if isError { block["is_error"] = true }
        return .object(block)
    }
}

/// The conversation of one session; one turn at a time.
actor Conversation {
    private var state = ConversationState()
    private var busy = false

    /// A copy to work on, or nil while another turn of this session runs.
    func begin() -> ConversationState? {
        guard !busy else { return nil }
        busy = true
        return state
    }

    func end(_ updated: ConversationState?) {
        if let updated { state = updated }
        busy = false
    }

    var history: [HistoryEntry] { state.display }
}
