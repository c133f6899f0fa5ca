import Foundation
import NIOCore
import SwitchboardJSON
import SwitchboardTesting
import Synchronization

/// The language model, scripted: a local server speaking the Anthropic Messages API wire
/// format (`POST /v1/messages`) on a free loopback port. Every request body is kept; each is
/// answered by ``Script`` from the call's number (1-based) and its body.
final class ScriptedLLM: Sendable {
    typealias Script = @Sendable (_ call: Int, _ request: JSONValue) -> JSONValue

    private let upstream: ScriptedUpstream

    private init(upstream: ScriptedUpstream) {
        self.upstream = upstream
    }

    var baseURL: String { upstream.baseURL }

    /// The JSON bodies of every `POST /v1/messages`, in order.
    var requests: [JSONValue] {
        upstream.requests.filter { $0.method == "POST" && $0.path == "/v1/messages" }.compactMap { JSONValue.parse($0.body.readableBytesView) }
    }

    static func start(_ script: @escaping Script) async throws -> ScriptedLLM {
        let calls = Mutex(0)
        let upstream = try await ScriptedUpstream.start { request in
            guard request.method == "POST", request.path == "/v1/messages", let body = JSONValue.parse(request.body.readableBytesView) else {
                return Self.reply(["type": "error", "error": ["type": "not_found_error", "message": "POST /v1/messages with JSON only"]], status: 404)
            }
            let n = calls.withLock { n in
                n += 1
                return n
            }
            return Self.reply(script(n, body))
        }
        return ScriptedLLM(upstream: upstream)
    }

    func stop() async { await upstream.stop() }

    private static func reply(_ json: JSONValue, status: Int = 200) -> ScriptedUpstream.Reply {
        ScriptedUpstream.Reply(status: status, headers: [("Content-Type", "application/json")], content: .whole(ByteBuffer(bytes: json.encoded())))
    }

    // MARK: answers

    /// A final answer: text only, `stop_reason: end_turn`.
    static func text(_ text: String) -> JSONValue {
        message(content: [["type": "text", "text": .string(text)]], stopReason: "end_turn")
    }

    /// An answer asking for tool calls (`stop_reason: tool_use`), after an optional sentence.
    static func toolUse(_ uses: [(id: String, name: String, input: JSONValue)], text: String? = nil) -> JSONValue {
        var content: [JSONValue] = text.map { [["type": "text", "text": .string($0)]] } ?? []
        for use in uses { content.append(["type": "tool_use", "id": .string(use.id), "name": .string(use.name), "input": use.input]) }
        return message(content: content, stopReason: "tool_use")
    }

    static func message(content: [JSONValue], stopReason: String) -> JSONValue {
        [
            "id": .string("msg_" + UUID().uuidString.prefix(12).lowercased()), "type": "message", "role": "assistant", "model": "scripted",
            "content": .array(content), "stop_reason": .string(stopReason), "stop_sequence": nil,
            "usage": ["input_tokens": 1, "output_tokens": 1],
        ]
    }
}

extension JSONValue {
    /// The names of the tools a Messages request offers.
    var toolNames: [String] { (self["tools"]?.array ?? []).compactMap { $0["name"]?.string } }
    /// The blocks of the last message of a Messages request.
    var lastMessageBlocks: [JSONValue] { self["messages"]?.array?.last?["content"]?.array ?? [] }
}
