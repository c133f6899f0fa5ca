/// The few members of a JSON-RPC request the gateway decides on — `jsonrpc`, `method`, `id`,
/// `params.name`, and where `params.arguments` and `params.name` lie in the bytes — read in one
/// pass without building the message (every other value is checked and skipped).
///
/// Why: the policy and rate-limit steps and the `/mcp` endpoint's event-loop path look at every
/// `tools/call`; building the whole message as a ``JSONValue`` (dictionaries, strings) was most
/// of their cost. Strict like ``JSONParser``: nil when the bytes are not one JSON object.
///
/// `ambiguous`: one of the members read here appears twice in its object. Parsers disagree on
/// which one counts (this module's parser keeps the first, Python's and JavaScript's the last),
/// so a gateway that judged one and forwarded both would let a caller pass a check with the
/// name it does not call. Callers refuse such a request.
package struct JSONRPCPeek: Sendable {
    package var jsonrpc: String?
    package var method: String?
    package var id: JSONValue?
    /// `params.name` when it is a string.
    package var name: String?
    /// The byte range of `params.name`'s string token, quotes included (to rewrite it in place).
    package var nameRange: Range<Int>?
    /// The byte range of `params.arguments`' value (parsed only when something needs it).
    package var argumentsRange: Range<Int>?
    /// Where `params`' object begins (its `{`) when it is one, and whether it has a `_meta`
    /// member (where the MCP conventions carry a trace context).
    package var paramsStart: Int?
    package var paramsHasMeta = false
    package var ambiguous = false

    /// Nil when `bytes` are not a JSON object.
    package init?(_ bytes: [UInt8]) {
        guard let peek = bytes.withUnsafeBytes({ Self($0) }) else { return nil }
        self = peek
    }

    /// The same, over bytes borrowed for the call (a request's buffer, read with no copy).
    package init?(_ bytes: UnsafeRawBufferPointer) {
        var p = JSONParser(bytes)
        p.skipWhitespace()
        guard p.i < bytes.count, bytes[p.i] == UInt8(ascii: "{") else { return nil }
        var seen: UInt8 = 0
        let ok = p.members { p, key in
            let bit: UInt8
            if key.spells("jsonrpc") { bit = 1 }
            else if key.spells("method") { bit = 2 }
            else if key.spells("id") { bit = 4 }
            else if key.spells("params") { bit = 8 }
            else { return p.skip(depth: 1) }
            if seen & bit != 0 { self.ambiguous = true }
            seen |= bit
            switch bit {
            case 1, 2:
                guard let text = p.stringIfString(depth: 1) else { return false }
                if bit == 1 { self.jsonrpc = text } else { self.method = text }
                return true
            case 4:
                guard let v = p.value(depth: 1) else { return false }
                self.id = v
                return true
            default:  // params
                p.skipWhitespace()
                guard p.i < bytes.count, bytes[p.i] == UInt8(ascii: "{") else { return p.skip(depth: 1) }
                self.paramsStart = p.i
                var inner: UInt8 = 0
                return p.members { p, key in
                    if key.spells("_meta") { self.paramsHasMeta = true }
                    if key.spells("name") {
                        if inner & 1 != 0 { self.ambiguous = true }
                        inner |= 1
                        p.skipWhitespace()
                        let start = p.i
                        guard let name = p.stringIfString(depth: 2) else { return false }
                        self.name = name
                        self.nameRange = name == nil ? nil : start..<p.i
                        return true
                    } else if key.spells("arguments") {
                        if inner & 2 != 0 { self.ambiguous = true }
                        inner |= 2
                        p.skipWhitespace()
                        let start = p.i
                        guard p.skip(depth: 2) else { return false }
                        self.argumentsRange = start..<p.i
                        return true
                    }
                    return p.skip(depth: 2)
                }
            }
        }
        guard ok else { return nil }
        p.skipWhitespace()
        guard p.i == bytes.count else { return nil }
    }

    /// `params.arguments`, parsed from `bytes` (the same bytes the peek read).
    package func arguments(in bytes: [UInt8]) -> JSONValue? {
        bytes.withUnsafeBytes { arguments(in: $0) }
    }

    package func arguments(in bytes: UnsafeRawBufferPointer) -> JSONValue? {
        argumentsRange.flatMap { JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[$0])) }
    }
}

extension UnsafeRawBufferPointer {
    /// Whether these bytes are `word`'s (a member name compared without building a string;
    /// the generic `elementsEqual` was a visible part of a peek's cost).
    fileprivate func spells(_ word: StaticString) -> Bool {
        guard count == word.utf8CodeUnitCount else { return false }
        var i = 0
        while i < count, self[i] == word.utf8Start[i] { i += 1 }
        return i == count
    }
}
