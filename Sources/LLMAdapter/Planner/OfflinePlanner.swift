import Crypto
import Foundation
import SwitchboardJSON

/// The offline backend's brain: a deterministic planner, not a language model. It reads the
/// conversation and the tools offered, and either calls the tool that fits the user's words
/// (arguments from the sentence), asks for what is missing, or, after tool results, writes a
/// short summary. The same conversation always gets the same answer.
struct OfflinePlanner: Sendable {
    enum Block: Sendable, Equatable {
        case text(String)
        case toolUse(id: String, name: String, input: JSONValue)
    }

    struct Plan: Sendable, Equatable {
        var blocks: [Block]
        var stopReason: String
    }

    static let selfDescription =
        "I'm Switchboard's offline planner, not a language model: a small set of deterministic rules inside the LLM adapter that match your words to the tools on offer and fill in their arguments. It answers when no model is configured; give the adapter an ANTHROPIC_API_KEY (or Bedrock credentials) to talk to a real model."

    func plan(_ request: MessagesRequest) -> Plan {
        guard let last = request.messages.last else { return Plan(blocks: [.text("There is no message to answer.")], stopReason: "end_turn") }
        if last.role == .assistant {
            return Plan(blocks: [.text("(The offline planner does not continue an assistant's turn.)")], stopReason: "end_turn")
        }
        let results = last.blocks.compactMap { block -> ResultSummarizer.Result? in
            guard case .toolResult(let id, let text, let isError) = block else { return nil }
            return ResultSummarizer.Result(toolName: Self.toolName(for: id, in: request.messages) ?? "the tool", text: text, isError: isError)
        }
        if !results.isEmpty {
            return Plan(blocks: [.text(ResultSummarizer.summary(results))], stopReason: "end_turn")
        }
        let said = request.lastUserText ?? ""
        return answer(said, request: request)
    }

    private func answer(_ said: String, request: MessagesRequest) -> Plan {
        let utterance = Utterance(said)
        let lower = said.lowercased()
        let tools: [MessagesRequest.Tool]
        switch request.toolChoice {
        case .none: tools = []
        case .tool(let name): tools = request.tools.filter { $0.name == name }
        case .auto, .any: tools = request.tools.filter { $0.inputSchema["x-server-tool"] == nil }
        }
        if Self.asksWhoItIs(lower) {
            return text(Self.selfDescription + (tools.isEmpty ? "" : "\n\n" + Self.toolList(tools)))
        }
        if said.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            return text("You sent an empty message. " + (tools.isEmpty ? "" : Self.toolList(tools)))
        }
        let isGreeting = utterance.words.count <= 4 && utterance.words.contains { PlannerVocabulary.greetings.contains($0.text.lowercased()) }
            || lower.contains("what can you do") || lower.contains("which tools") || lower.contains("what tools")
        if isGreeting, tools.isEmpty {
            return text("Hello! I'm the offline planner. No tools are available right now, so there is little I can do.")
        }
        if tools.isEmpty {
            let why = request.toolChoice == .none ? "tool use is turned off for this request" : "no tools are available right now"
            return text("I'm the offline planner and I can only act through tools, but \(why), so I can't do \"\(Self.clip(said))\".")
        }
        let smallTalk: Set<String> = ["thanks", "thank", "you", "ok", "okay", "great", "cool", "nice", "perfect", "bye", "goodbye", "ty", "thx", "awesome"]
        if !utterance.words.isEmpty, utterance.quoted.isEmpty, utterance.numbers.isEmpty,
           utterance.words.allSatisfy({ smallTalk.contains($0.text.lowercased()) })
        {
            return text("You're welcome. Anything else? " + Self.toolList(tools))
        }

        var candidates = ToolMatcher(tools: tools).candidates(for: utterance)
        if case .tool(let forced) = request.toolChoice, candidates.isEmpty, let tool = tools.first(where: { $0.name == forced }) {
            candidates = [ToolMatcher.Candidate(tool: tool, score: 0, nounMatched: true, verbMatched: false, concepts: [])]
        }
        // "hi" and "help" greet; "hi, list my todos" gets on with it.
        if isGreeting, candidates.isEmpty {
            return text("Hello! I'm the offline planner. " + Self.toolList(tools))
        }
        guard !candidates.isEmpty else {
            return text("I couldn't match \"\(Self.clip(said))\" to any of my tools. " + Self.toolList(tools))
        }
        // Among the best-scoring tools, prefer one whose required arguments the sentence fills.
        let best = candidates[0].score
        let top = candidates.filter { $0.score == best }
        let filled = top.map { candidate in
            (candidate, ArgumentFiller().fill(schema: candidate.tool.inputSchema, utterance: utterance, freeText: Self.freeText(utterance, candidate: candidate)))
        }
        // …and among those, the one that uses the most of what was said ("todo: buy eggs" adds).
        let complete = filled.filter { $0.1.complete }
        let mostUsed = complete.max { $0.1.input.count < $1.1.input.count }
        let (chosen, arguments) = mostUsed ?? filled.first { $0.1.problems.isEmpty } ?? filled[0]

        if !arguments.problems.isEmpty {
            return text("I'd use `\(chosen.tool.name)`, but " + arguments.problems.joined(separator: "; ") + ". Could you say it again?")
        }
        if !arguments.missing.isEmpty {
            let needs = arguments.missing.map { p in
                "\(p.name)" + (p.type.isEmpty ? "" : " (\(p.type))") + (p.description.isEmpty ? "" : ": \(p.description)")
            }
            var hint = ""
            if arguments.missing.contains(where: { $0.type == "string" }) { hint = " Put text in quotes, like \"buy milk\"." }
            else if arguments.missing.contains(where: { $0.type == "integer" || $0.type == "number" }) { hint = " Give it as a number, like 2." }
            return text("To use `\(chosen.tool.name)` I need " + Self.list(needs) + "." + hint)
        }
        let inputs = Self.repeated(arguments.input, schema: chosen.tool.inputSchema, utterance: utterance)
        if let problem = inputs.problem {
            return text("I'd use `\(chosen.tool.name)`, but \(problem). Could you say it again?")
        }
        var blocks: [Block] = [.text(inputs.calls.count == 1 ? "I'll use `\(chosen.tool.name)`." : "I'll use `\(chosen.tool.name)` \(inputs.calls.count) times.")]
        for (index, input) in inputs.calls.enumerated() {
            let value = JSONValue.object(input)
            blocks.append(.toolUse(id: Self.toolUseID(request: request, name: chosen.tool.name, input: value, index: index), name: chosen.tool.name, input: value))
        }
        return Plan(blocks: blocks, stopReason: "tool_use")
    }

    /// "delete todos 3 and 4": when the one required number gets several values, one call each.
    static func repeated(_ input: [String: JSONValue], schema: [String: JSONValue], utterance: Utterance) -> (calls: [[String: JSONValue]], problem: String?) {
        let numeric = ArgumentFiller.properties(of: schema).filter { $0.required && ($0.type == "integer" || $0.type == "number") }
        guard numeric.count == 1, let property = numeric.first, utterance.references.isEmpty, utterance.numbers.count > 1,
              input[property.name]?.double == utterance.numbers.first else { return ([input], nil) }
        var calls: [[String: JSONValue]] = []
        for n in utterance.numbers.prefix(10) {
            if property.type == "integer", n.rounded() != n { return ([], "\(property.name) must be a whole number, not \(n)") }
            if let min = property.schema["minimum"]?.double, n < min { return ([], "\(property.name) must be at least \(ArgumentFiller.format(min)), not \(ArgumentFiller.format(n))") }
            if let max = property.schema["maximum"]?.double, n > max { return ([], "\(property.name) must be at most \(ArgumentFiller.format(max)), not \(ArgumentFiller.format(n))") }
            var call = input
            call[property.name] = .number(n)
            calls.append(call)
        }
        return (calls, nil)
    }

    private func text(_ s: String) -> Plan { Plan(blocks: [.text(s)], stopReason: "end_turn") }

    // MARK: - Helpers

    static func asksWhoItIs(_ lower: String) -> Bool {
        let phrases = [
            "who are you", "what are you", "are you claude", "are you an ai", "are you a bot", "are you real", "are you human", "are you a human",
            "are you offline", "offline planner", "what model", "which model", "your model", "are you a language model", "are you an llm",
            "are you gpt", "what llm", "which llm", "are you a real model", "are you the offline", "what is your name", "what's your name",
        ]
        return phrases.contains { lower.contains($0) }
    }

    static func toolList(_ tools: [MessagesRequest.Tool]) -> String {
        let lines = tools.prefix(30).map { tool in "- `\(tool.name)`" + (tool.description.isEmpty ? "" : ": \(tool.description)") }
        return "Tools I can use:\n" + lines.joined(separator: "\n")
    }

    /// The sentence without intent words, stop words and numbers: the text a user gave unquoted.
    static func freeText(_ utterance: Utterance, candidate: ToolMatcher.Candidate) -> String? {
        let kept = utterance.words.filter { word in
            guard let concept = word.concept else { return false }
            if concept.hasPrefix("verb:") { return false }
            return !candidate.concepts.contains(concept)
        }
        // Keep the span from the first to the last kept word, so "buy milk and eggs" stays whole.
        guard let first = kept.first, let last = kept.last,
              let start = utterance.words.firstIndex(of: first), let end = utterance.words.lastIndex(of: last) else { return nil }
        let span = utterance.words[start...end].map(\.text)
        let trimmed = span.joined(separator: " ")
        return trimmed.isEmpty ? nil : trimmed
    }

    static func toolName(for id: String, in messages: [MessagesRequest.Message]) -> String? {
        for message in messages.reversed() where message.role == .assistant {
            for block in message.blocks {
                if case .toolUse(let useID, let name, _) = block, useID == id { return name }
            }
        }
        return nil
    }

    /// Deterministic and unique within a conversation: a hash of the conversation so far.
    static func toolUseID(request: MessagesRequest, name: String, input: JSONValue, index: Int = 0) -> String {
        var hasher = SHA256()
        hasher.update(data: JSONValue.object([
            "messages": request.body["messages"] ?? .null, "tool": .string(name), "input": input, "index": .number(Double(index)),
        ]).encoded())
        let digest = hasher.finalize()
        return "toolu_offline_" + SigV4Signer.hex(digest.prefix(12))
    }

    static func clip(_ s: String) -> String {
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "\n", with: " ")
        return t.count > 120 ? String(t.prefix(119)) + "…" : t
    }

    static func list(_ items: [String]) -> String {
        switch items.count {
        case 0: return ""
        case 1: return items[0]
        default: return items.dropLast().joined(separator: ", ") + " and " + items.last!
        }
    }
}
