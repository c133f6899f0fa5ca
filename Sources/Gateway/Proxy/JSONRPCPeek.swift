import Foundation
import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Cheap looks into a kept MCP request body: byte scans on the hot path, and the JSON-RPC
/// `id` (parsed only when an error must be answered as a JSON-RPC error object).
struct JSONRPCPeek: Sendable {
    /// The request id as JSON text (`1`, `"abc"`), nil for a notification.
    var idJSON: String?

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

    init?(_ body: ByteBuffer) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] else { return nil }
        if let id = object["id"], !(id is NSNull),
           let data = try? JSONSerialization.data(withJSONObject: [id], options: [.fragmentsAllowed]) {
            idJSON = String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        }
    }
}
