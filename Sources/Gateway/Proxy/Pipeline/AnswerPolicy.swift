import Foundation
import NIOCore
import PluginAPI

/// What the pipeline does with an upstream's answer, decided once for both drivers: pass it
/// on, or get a fresh credential and replay the call (401), or widen the scopes and replay
/// (a 403 challenge, or an MCP tool result saying `insufficient_scope` — in a JSON answer or
/// in the first event of an SSE answer). Pure: it reads the head and, when asked to, the
/// body or the stream's first event; the drivers do the work.
struct AnswerPolicy: Sendable {
    /// The plugin caches credentials: a 401 or 403 may be answered by a fresh or wider one.
    let caching: Bool
    /// An MCP `tools/call` through such a plugin: its result may ask for more scopes.
    let toolCall: Bool

    init(connection: Connection, isMCP: Bool, body: ByteBuffer?) {
        caching = connection.strategy.map { $0.credentialScope != .uncached } ?? false
        // A byte scan, not a JSON parse: this runs on every call.
        toolCall = caching && isMCP && body.map(BodyScan.isToolCall) == true
    }

    enum Decision: Sendable {
        case pass
        /// The credential was refused: a fresh one, and the call once more.
        case refresh
        /// The upstream named the scopes it wants (the plugin decides whether it can).
        case stepUp(ScopeChallenge)
        /// A JSON tool result: its body decides (``challenge(inJSON:)``).
        case readBody
        /// An SSE answer to a tool call: its first event decides (``challenge(inFirstEvent:)``),
        /// the rest of the stream is not held.
        case readFirstEvent
    }

    /// The decision on the answer's head. `refreshed`: this call was replayed after a 401 once.
    func judge(status: Int, wwwAuthenticate: String?, contentType: String?, refreshed: Bool) -> Decision {
        guard caching else { return .pass }
        switch status {
        case 401:
            return refreshed ? .pass : .refresh
        case 403:
            return ScopeChallengeParser.fromHeader(wwwAuthenticate).map(Decision.stepUp) ?? .pass
        case 200 where toolCall:
            if BodyScan.isJSON(contentType: contentType) { return .readBody }
            if Self.isEventStream(contentType) { return .readFirstEvent }
            return .pass
        default:
            return .pass
        }
    }

    /// The scope demand in a JSON answer's tool result, if any.
    static func challenge(inJSON body: ByteBuffer) -> ScopeChallenge? {
        guard BodyScan.mentions("insufficient_scope", in: body) else { return nil }
        return ScopeChallengeParser.fromToolResult(Data(body.readableBytesView))
    }

    /// The scope demand in an SSE answer's first event (`prefix`: the stream's first bytes,
    /// through that event's end), if any.
    static func challenge(inFirstEvent prefix: ByteBuffer) -> ScopeChallenge? {
        guard BodyScan.mentions("insufficient_scope", in: prefix), let data = SSEFirstEvent.data(in: prefix) else { return nil }
        return ScopeChallengeParser.fromToolResult(Data(data.utf8))
    }

    static func isEventStream(_ contentType: String?) -> Bool {
        contentType.map { HeaderFilter.hasPrefixIgnoringCase($0, "text/event-stream") } == true
    }
}

/// The first event of an SSE stream (WHATWG HTML, server-sent events): enough to judge a tool
/// result without holding the rest of the stream.
enum SSEFirstEvent {
    /// Whether `prefix` holds a whole first event that carries data (a blank line ends it;
    /// events without data, such as a priming `id:` event, do not count).
    static func isComplete(_ prefix: ByteBuffer) -> Bool { data(in: prefix) != nil }

    /// The `data:` lines of the first event with data, joined by newlines; nil while that
    /// event has not ended.
    static func data(in prefix: ByteBuffer) -> String? {
        let text = String(decoding: prefix.readableBytesView, as: UTF8.self)
        var lines: [String] = []
        var current = ""
        var iterator = text.unicodeScalars.makeIterator()
        var pendingCR = false
        func endLine() -> String? {
            defer { current = "" }
            if current.isEmpty {  // a blank line ends an event
                if !lines.isEmpty { return lines.joined(separator: "\n") }
                return nil
            }
            if current.hasPrefix("data:") {
                var value = current.dropFirst(5)
                if value.first == " " { value = value.dropFirst() }
                lines.append(String(value))
            } else if current == "data" {
                lines.append("")
            }
            return nil
        }
        while let scalar = iterator.next() {
            if pendingCR {
                pendingCR = false
                if scalar == "\n" { continue }
            }
            if scalar == "\r" || scalar == "\n" {
                pendingCR = scalar == "\r"
                if let event = endLine() { return event }
            } else {
                current.unicodeScalars.append(scalar)
            }
        }
        return nil
    }
}
