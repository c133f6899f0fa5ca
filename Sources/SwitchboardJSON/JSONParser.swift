/// RFC 8259 JSON text → ``JSONValue``, straight from the bytes.
///
/// Why not `JSONDecoder`: decoding an untyped value through `Decodable` tries each type in turn
/// for every nested value (a thrown error per miss), which made parsing the largest cost of a
/// call through the gateway's `/mcp` endpoint; `JSONSerialization` loses the difference between
/// `true` and `1`. This parser reads each byte once. Strict: no comments, no trailing commas, no
/// leading zeros, no lone surrogates, nothing after the value but whitespace; nesting is capped
/// (``maxDepth``) so hostile input cannot exhaust the stack.
struct JSONParser {
    static let maxDepth = 512

    /// The text, borrowed for the parse (the parser must not outlive it): read in place, with no
    /// array bounds check or retain per byte or key — every read is behind an `i < bytes.count`
    /// of the parser's own (debug builds check each one again; the fuzz corpus runs there).
    let bytes: UnsafeRawBufferPointer
    var i = 0
    /// An object naming a member twice is not JSON this parser accepts (JOSE headers and JWT
    /// claims, RFC 7515 §4: parsers disagree on which of two values counts, so an attacker can
    /// show one reader one value and another reader the other).
    var refusesDuplicateNames = false

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    static func parse(_ bytes: [UInt8], refusingDuplicateNames: Bool = false) -> JSONValue? {
        bytes.withUnsafeBytes { parse($0, refusingDuplicateNames: refusingDuplicateNames) }
    }

    static func parse(_ bytes: UnsafeRawBufferPointer, refusingDuplicateNames: Bool = false) -> JSONValue? {
        var parser = JSONParser(bytes)
        parser.refusesDuplicateNames = refusingDuplicateNames
        guard let value = parser.value(depth: 0) else { return nil }
        parser.skipWhitespace()
        // (Not `? value : nil`: JSONValue is ExpressibleByNilLiteral, that nil would be `.null`.)
        guard parser.i == bytes.count else { return Optional.none }
        return value
    }

    mutating func skipWhitespace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    mutating func value(depth: Int) -> JSONValue? {
        guard depth < Self.maxDepth else { return nil }
        skipWhitespace()
        guard i < bytes.count else { return nil }
        switch bytes[i] {
        case UInt8(ascii: "{"): return object(depth: depth)
        case UInt8(ascii: "["): return array(depth: depth)
        case UInt8(ascii: "\""): return string().map(JSONValue.string)
        case UInt8(ascii: "t"): return literal("true", .bool(true))
        case UInt8(ascii: "f"): return literal("false", .bool(false))
        case UInt8(ascii: "n"): return literal("null", .null)
        default: return number()
        }
    }

    mutating func literal(_ word: StaticString, _ value: JSONValue) -> JSONValue? {
        let count = word.utf8CodeUnitCount
        guard i + count <= bytes.count else { return nil }
        let matches = word.withUTF8Buffer { w in (0..<count).allSatisfy { bytes[i + $0] == w[$0] } }
        guard matches else { return nil }
        i += count
        return value
    }

    mutating func object(depth: Int) -> JSONValue? {
        var fields: [String: JSONValue] = [:]
        let ok = members { p, key in
            guard let v = p.value(depth: depth + 1) else { return false }
            let name = String(decoding: key, as: UTF8.self)  // checked UTF-8 by the member reader
            if fields[name] == nil {
                fields[name] = v
            } else if p.refusesDuplicateNames {
                return false
            }  // else the first of duplicate names wins, as JSONValue's decoder did
            return true
        }
        return ok ? .object(fields) : nil
    }

    mutating func array(depth: Int) -> JSONValue? {
        i += 1  // [
        var items: [JSONValue] = []
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
            i += 1
            return .array(items)
        }
        while true {
            guard let v = value(depth: depth + 1) else { return nil }
            items.append(v)
            skipWhitespace()
            guard i < bytes.count else { return nil }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            return nil
        }
    }

    /// What a string token holds, scanned once from its opening quote (the parser does not move).
    enum StringScan {
        /// No escape: the bytes between the quotes are the string (`ascii`: no byte ≥ 0x80, so
        /// nothing left to check).
        case plain(Range<Int>, ascii: Bool)
        /// An escape at `at`.
        case escaped(at: Int)
        /// A control character, or no closing quote.
        case invalid
    }

    func scanString() -> StringScan {
        var j = i + 1
        var ascii = true
        while j < bytes.count {
            let b = bytes[j]
            if b == UInt8(ascii: "\"") { return .plain((i + 1)..<j, ascii: ascii) }
            if b == UInt8(ascii: "\\") { return .escaped(at: j) }
            if b < 0x20 { return .invalid }
            if b >= 0x80 { ascii = false }
            j += 1
        }
        return .invalid
    }

    /// `bytes[range]` as a string; nil when it is not UTF-8. ASCII (nearly every member a call is
    /// judged by) is built by `String(decoding:)`, which needs no check: `String(validating:as:)`
    /// looked up generic metadata at run time on every call (its `_validate` is not specialized),
    /// most of the cost of a short string.
    func text(_ range: Range<Int>, ascii: Bool) -> String? {
        let slice = UnsafeRawBufferPointer(rebasing: bytes[range])
        return ascii ? String(decoding: slice, as: UTF8.self) : String(validating: slice, as: UTF8.self)
    }

    /// A value that is read only when it is a string: the string, `.some(nil)` for any other
    /// value (checked and skipped), nil when the text is not JSON there.
    mutating func stringIfString(depth: Int) -> String?? {
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "\"") { return string().map { .some($0) } }
        return skip(depth: depth) ? .some(nil) : nil
    }

    /// A string token (at its opening quote).
    mutating func string() -> String? {
        let start = i + 1
        switch scanString() {
        case .plain(let range, let ascii):  // the common case: the bytes are the string
            i = range.upperBound + 1
            return text(range, ascii: ascii)
        case .invalid:
            return nil
        case .escaped(let at):
            i = at
        }
        var out = Array(bytes[start..<i])
        while i < bytes.count {
            let b = bytes[i]
            i += 1
            switch b {
            case UInt8(ascii: "\""): return String(validating: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard i < bytes.count else { return nil }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(scalar) {  // a high surrogate: its low half must follow
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else { return nil }
                        i += 2
                        guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        return nil
                    }
                    guard let u = Unicode.Scalar(scalar) else { return nil }
                    out.append(contentsOf: UTF8.encode(u)!)
                default: return nil
                }
            default:
                if b < 0x20 { return nil }
                out.append(b)
            }
        }
        return nil
    }

    mutating func hex4() -> UInt32? {
        guard i + 4 <= bytes.count else { return nil }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }

    /// A number token: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    mutating func number() -> JSONValue? {
        let start = i
        func digits() -> Int {
            let from = i
            while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") { i += 1 }
            return i - from
        }
        let negative = i < bytes.count && bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        guard i < bytes.count else { return nil }
        let integerStart = i
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
        } else if digits() == 0 {
            return nil
        }
        // A whole number of up to 15 digits (ids, counts) is exact as a Double: read directly
        // (parsing the text as a Double was most of the cost of reading a request's id).
        if i - integerStart <= 15, i == bytes.count || (bytes[i] != UInt8(ascii: ".") && bytes[i] | 0x20 != UInt8(ascii: "e")) {
            var value: Int64 = 0
            for d in bytes[integerStart..<i] { value = value * 10 + Int64(d - UInt8(ascii: "0")) }
            return .number(negative ? -Double(value) : Double(value))
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { return nil }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { return nil }
        }
        // ASCII by construction (digits, sign, point, exponent): no UTF-8 to check.
        guard let d = Double(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)), d.isFinite else { return nil }
        return .number(d)
    }
}

extension JSONParser {
    /// Reads an object's members (at its `{`), handing each key's UTF-8 to `member`, which must
    /// read or skip the value; false when the object is not well formed (or `member` says so).
    mutating func members(_ member: (inout JSONParser, UnsafeRawBufferPointer) -> Bool) -> Bool {
        i += 1  // {
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            i += 1
            return true
        }
        while true {
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\""), let key = keyToken() else { return false }
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return false }
            i += 1
            let ok: Bool
            switch key {
            case .raw(let range): ok = member(&self, UnsafeRawBufferPointer(rebasing: bytes[range]))
            case .decoded(let decoded): ok = decoded.withUnsafeBytes { member(&self, $0) }
            }
            guard ok else { return false }
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

    private enum Key {
        /// Where the key's bytes are in the text (no escapes).
        case raw(Range<Int>)
        case decoded([UInt8])
    }

    /// A key's UTF-8 (at its opening quote): the bytes themselves when it has no escapes (no
    /// string is built for the keys a peek compares), else the decoded string's.
    private mutating func keyToken() -> Key? {
        switch scanString() {
        case .plain(let range, let ascii):
            return pass(range, ascii: ascii) ? .raw(range) : nil
        case .invalid:
            return nil
        case .escaped:
            return string().map { .decoded(Array($0.utf8)) }
        }
    }

    /// A string token checked without building it when it has no escapes (the common case).
    private mutating func skipString() -> Bool {
        switch scanString() {
        case .plain(let range, let ascii):
            return pass(range, ascii: ascii)
        case .invalid:
            return false
        case .escaped:
            return string() != nil
        }
    }

    /// Moves past a ``StringScan/plain(_:ascii:)`` token; whether it is UTF-8 (non-ASCII bytes are
    /// checked by building the string then only).
    private mutating func pass(_ range: Range<Int>, ascii: Bool) -> Bool {
        i = range.upperBound + 1
        return ascii || text(range, ascii: false) != nil
    }
}
