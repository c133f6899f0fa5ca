import Foundation
import NIOCore
import SwitchboardJSON
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Byte scans of kept bodies and answers on the hot path (no parsing), and an MCP request's
/// JSON-RPC `id` (read only when an error must be answered as a JSON-RPC error object).
enum BodyScan {

    /// Whether `needle` occurs in `body` (bytes compared, no parsing: libc's `memchr` finds
    /// each candidate first byte, `memcmp` checks the rest; several times faster on a
    /// kilobyte answer than a byte loop in Swift).
    static func mentions(_ needle: String, in body: ByteBuffer) -> Bool {
        var needle = needle
        return needle.withUTF8 { n in  // the literal's own bytes: no array per call (hot path)
            guard let needleBase = n.baseAddress, let first = n.first, body.readableBytes >= n.count else { return false }
            return body.withUnsafeReadableBytes { raw in
                guard let base = raw.baseAddress else { return false }
                var offset = 0
                let last = raw.count - n.count  // the last offset a match can start at
                while offset <= last {
                    guard let hit = memchr(base + offset, Int32(first), last - offset + 1) else { return false }
                    if memcmp(hit, needleBase, n.count) == 0 { return true }
                    offset = base.distance(to: UnsafeRawPointer(hit)) + 1
                }
                return false
            }
        }
    }

    /// Whether a kept MCP request body is a `tools/call` (either spelling: JSONSerialization
    /// writes `tools\/call`), whose JSON answer may carry an `insufficient_scope` tool result.
    static func isToolCall(_ body: ByteBuffer) -> Bool {
        mentions("tools/call", in: body) || mentions("tools\\/call", in: body)
    }

    /// Whether an answer's `Content-Type` is JSON (any case, parameters allowed).
    static func isJSON(contentType: String?) -> Bool {
        contentType.map { HeaderFilter.hasPrefixIgnoringCase($0, "application/json") } == true
    }

    /// The request id of an MCP request body as JSON text (`1`, `"abc"`); nil for a notification
    /// or a body that is not one JSON object.
    static func idJSON(of body: ByteBuffer) -> String? {
        guard let id = JSONRPCPeek(body)?.id, id != .null else { return nil }
        return String(decoding: id.encoded(), as: UTF8.self)
    }
}

extension JSONRPCPeek {
    /// A peek at a request's buffer, read in place (no copy of the body).
    init?(_ body: ByteBuffer) {
        guard let peek = body.withUnsafeReadableBytes({ JSONRPCPeek($0) }) else { return nil }
        self = peek
    }
}
