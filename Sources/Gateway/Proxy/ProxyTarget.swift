import Foundation
/// A request target on a proxy route, split and checked so it cannot escape the upstream.
///
/// Accepted: `/mcp/{segment}` and `/rest/{segment}/{path…}`, origin-form only. Rejected with
/// 400: absolute or authority form (`http://…`, `//host`) as given here, dot segments (`.`/`..`, also
/// percent-encoded as `%2e`), encoded slashes or backslashes (`%2f`, `%5c`), empty segments,
/// malformed or control-character escapes, and fragments. (A request line in absolute form,
/// `GET http://host/rest/…`, which RFC 9112 §3.2.2 says a server must accept, reaches this as
/// its path when Hummingbird's router took it — the async driver; its authority is never used:
/// the upstream gets its own Host. Test: test_security_http's absolute-form cases.)
struct ProxyTarget: Equatable {
    enum Prefix: Equatable { case mcp, rest }
    var prefix: Prefix
    /// The route segment (connection route key).
    var segment: Substring
    /// The rest of the path, still percent-encoded as received; empty or starting with `/`.
    var remainder: Substring
    /// The raw query (without `?`), if any.
    var query: Substring?

    /// Nil when `target` is not a proxy route (the API router handles it).
    static func parse(_ target: String) throws(GatewayError) -> ProxyTarget? {
        guard target.hasPrefix("/") else { throw GatewayError.invalidPath("only origin-form request targets are accepted") }
        if target.hasPrefix("//") { throw GatewayError.invalidPath("a request target may not start with '//'") }
        let path: Substring
        let query: Substring?
        if let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) {
            path = target[..<q]
            query = target[target.utf8.index(after: q)...]
        } else {
            path = target[...]
            query = nil
        }
        let prefix: Prefix
        let afterPrefix: Substring
        if path.hasPrefix("/mcp/") {
            prefix = .mcp
            afterPrefix = path.dropFirst(5)
        } else if path.hasPrefix("/rest/") {
            prefix = .rest
            afterPrefix = path.dropFirst(6)
        } else {
            return nil
        }
        // (Byte scans, not Foundation's `contains`: this runs on every proxied request.)
        if target.utf8.contains(UInt8(ascii: "#")) { throw GatewayError.invalidPath("a request target may not contain a fragment") }
        let slash = afterPrefix.firstIndex(of: "/")
        let segment = afterPrefix[..<(slash ?? afterPrefix.endIndex)]
        let remainder = afterPrefix[(slash ?? afterPrefix.endIndex)...]
        guard !segment.isEmpty else { throw GatewayError.invalidPath("the route has no connection name") }
        try check(path[path.index(before: segment.startIndex)..<segment.endIndex])
        try check(remainder)
        return ProxyTarget(prefix: prefix, segment: segment, remainder: remainder, query: query)
    }

    /// Every segment of `remainder` must decode to a plain name.
    private static func check(_ remainder: Substring) throws(GatewayError) {
        guard !remainder.isEmpty else { return }
        let segments = remainder.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        for (i, raw) in segments.enumerated() {
            if raw.isEmpty {
                if i == segments.count - 1 { continue }  // trailing slash
                throw GatewayError.invalidPath("empty path segments ('//') are not allowed")
            }
            if isPlain(raw) { continue }
            guard let decoded = percentDecode(raw) else {
                throw GatewayError.invalidPath("malformed percent-encoding in the path")
            }
            for byte in decoded where byte == UInt8(ascii: "/") || byte == UInt8(ascii: "\\") || byte < 0x20 || byte == 0x7F {
                throw GatewayError.invalidPath("encoded slashes, backslashes and control characters are not allowed in the path")
            }
            // What an upstream might still read as `..` after we pass it on, refused like `..`:
            // a second round of encoding (`%252e%252e` decodes to `%2e%2e`, which a server that
            // decodes twice reads as `..`);
            if hasEscape(decoded) { throw GatewayError.invalidPath("double percent-encoding is not allowed in the path") }
            // bytes that are not UTF-8 (an overlong `%c0%ae` is `.` to a lax decoder);
            guard let text = String(validating: decoded, as: UTF8.self) else {
                throw GatewayError.invalidPath("the path must be UTF-8 (no overlong or invalid sequences)")
            }
            // and a dot segment behind a path parameter (`..;x` — Tomcat, Jetty and Spring drop
            // the `;…` and keep `..`) or in Unicode's compatibility forms (`．．`, `‥`, `․`).
            let base = text.prefix { $0 != ";" }
            let folded = base.precomposedStringWithCompatibilityMapping
            if folded == "." || folded == ".." {
                throw GatewayError.invalidPath("dot segments ('.', '..', also as '..;', double-encoded or look-alike dots) are not allowed in the path")
            }
        }
    }

    /// A segment that needs no decoding to be judged: no `%`, no backslash, no control
    /// character, no `;`, nothing outside ASCII, and not a dot segment (the common case, checked
    /// without allocating).
    private static func isPlain(_ raw: Substring) -> Bool {
        var allDots = true
        for byte in raw.utf8 {
            if byte == UInt8(ascii: "%") || byte == UInt8(ascii: "\\") || byte == UInt8(ascii: ";") || byte < 0x20 || byte >= 0x7F { return false }
            if byte != UInt8(ascii: ".") { allDots = false }
        }
        return !(allDots && raw.utf8.count <= 2)
    }

    /// Percent-decodes bytes; nil on a malformed escape.
    static func percentDecode(_ s: Substring) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        var it = s.utf8.makeIterator()
        while let b = it.next() {
            if b == UInt8(ascii: "%") {
                guard let h = it.next(), let l = it.next(), let hv = hex(h), let lv = hex(l) else { return nil }
                out.append(hv << 4 | lv)
            } else {
                out.append(b)
            }
        }
        return out
    }

    /// Whether decoded bytes still hold a percent-escape (`%` and two hex digits).
    private static func hasEscape(_ bytes: [UInt8]) -> Bool {
        var i = 0
        while i + 2 < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), hex(bytes[i + 1]) != nil, hex(bytes[i + 2]) != nil { return true }
            i += 1
        }
        return false
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
