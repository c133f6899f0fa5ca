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
    /// Whether `params` is present and an object.
    package var hasParams = false
    package var ambiguous = false

    /// Nil when `bytes` are not a JSON object.
    package init?(_ bytes: [UInt8]) {
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
                guard let v = p.value(depth: 1) else { return false }
                if bit == 1 { self.jsonrpc = v.string } else { self.method = v.string }
                return true
            case 4:
                guard let v = p.value(depth: 1) else { return false }
                self.id = v
                return true
            default:  // params
                p.skipWhitespace()
                guard p.i < bytes.count, bytes[p.i] == UInt8(ascii: "{") else { return p.skip(depth: 1) }
                self.hasParams = true
                var inner: UInt8 = 0
                return p.members { p, key in
                    if key.spells("name") {
                        if inner & 1 != 0 { self.ambiguous = true }
                        inner |= 1
                        p.skipWhitespace()
                        let start = p.i
                        guard let v = p.value(depth: 2) else { return false }
                        self.name = v.string
                        self.nameRange = v.string == nil ? nil : start..<p.i
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
        argumentsRange.flatMap { JSONParser.parse(Array(bytes[$0])) }
    }
}

extension JSONParser {
    /// Reads an object's members (at its `{`), handing each key's UTF-8 to `member`, which must
    /// read or skip the value; false when the object is not well formed (or `member` says so).
    mutating func members(_ member: (inout JSONParser, ArraySlice<UInt8>) -> Bool) -> Bool {
        i += 1  // {
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            i += 1
            return true
        }
        while true {
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\""), let key = keyBytes() else { return false }
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return false }
            i += 1
            guard member(&self, key) else { return false }
            skipWhitespace()
            guard i < bytes.count else { return false }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; return true }
            return false
        }
    }

    /// Checks one value and moves past it, building nothing but what validation needs.
    mutating func skip(depth: Int) -> Bool {
        guard depth < Self.maxDepth else { return false }
        skipWhitespace()
        guard i < bytes.count else { return false }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            return members { p, _ in p.skip(depth: depth + 1) }
        case UInt8(ascii: "["):
            i += 1
            skipWhitespace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
                i += 1
                return true
            }
            while true {
                guard skip(depth: depth + 1) else { return false }
                skipWhitespace()
                guard i < bytes.count else { return false }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return true }
                return false
            }
        case UInt8(ascii: "\""):
            return skipString()
        default:
            return value(depth: depth) != nil  // a literal or a number: nothing to allocate
        }
    }

    /// A key's UTF-8 (at its opening quote): the bytes themselves when it has no escapes (no
    /// string is built for the keys a peek compares), else the decoded string's.
    private mutating func keyBytes() -> ArraySlice<UInt8>? {
        let start = i
        guard skipString() else { return nil }
        let raw = bytes[(start + 1)..<(i - 1)]
        guard raw.contains(UInt8(ascii: "\\")) else { return raw }
        i = start
        return string().map { ArraySlice($0.utf8) }
    }

    /// A string token checked without building it when it has no escapes (the common case).
    private mutating func skipString() -> Bool {
        let start = i
        i += 1
        var ascii = true
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                i += 1
                // Non-ASCII bytes must still be UTF-8: checked by building the string then only.
                return ascii || String(validating: bytes[(start + 1)..<(i - 1)], as: UTF8.self) != nil
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { return false }
            if b >= 0x80 { ascii = false }
            i += 1
        }
        i = start
        return string() != nil
    }
}

extension ArraySlice<UInt8> {
    /// Whether these bytes are `word`'s (a member name compared without building a string;
    /// the generic `elementsEqual` was a visible part of a peek's cost).
    fileprivate func spells(_ word: StaticString) -> Bool {
        guard count == word.utf8CodeUnitCount else { return false }
        return withUnsafeBufferPointer { bytes in
            var i = 0
            while i < bytes.count, bytes[i] == word.utf8Start[i] { i += 1 }
            return i == bytes.count
        }
    }
}
