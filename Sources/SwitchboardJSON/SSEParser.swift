/// Server-sent events (WHATWG HTML §9.2) fed chunk by chunk: yields each event's `data`
/// (its `data:` lines joined by newlines) once its blank line arrives. Enough for MCP's
/// Streamable HTTP answers (agent0's MCP client, the gateway's `/mcp` fan-out); `event`, `id`
/// and `retry` fields are read past.
package struct SSEParser: Sendable {
    private var line: [UInt8] = []
    private var data: [String] = []
    private var sawCR = false

    /// Feeds bytes; returns the events they completed.
    package init() {}

    package mutating func feed(_ bytes: some Sequence<UInt8>) -> [String] {
        var events: [String] = []
        for byte in bytes {
            if sawCR {
                sawCR = false
                if byte == UInt8(ascii: "\n") { continue }  // CRLF: the CR ended the line already
            }
            if byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") {
                sawCR = byte == UInt8(ascii: "\r")
                if let event = endLine() { events.append(event) }
            } else {
                line.append(byte)
            }
        }
        return events
    }

    private mutating func endLine() -> String? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            guard !data.isEmpty else { return nil }
            let event = data.joined(separator: "\n")
            data.removeAll()
            return event
        }
        let text = String(decoding: line, as: UTF8.self)
        if text.hasPrefix(":") { return nil }  // a comment
        let (field, value): (Substring, Substring)
        if let colon = text.firstIndex(of: ":") {
            field = text[..<colon]
            var rest = text[text.index(after: colon)...]
            if rest.first == " " { rest = rest.dropFirst() }
            value = rest
        } else {
            field = text[...]
            value = ""
        }
        if field == "data" { data.append(String(value)) }
        return nil
    }
}
