import Foundation
import NIOCore

/// Cheap looks into a kept MCP request body: byte scans on the hot path, and the JSON-RPC
/// `id` (parsed only when an error must be answered as a JSON-RPC error object).
struct JSONRPCPeek: Sendable {
    /// The request id as JSON text (`1`, `"abc"`), nil for a notification.
    var idJSON: String?

    /// Whether `needle` occurs in `body` (bytes compared, no parsing).
    static func mentions(_ needle: String, in body: ByteBuffer) -> Bool {
        var needle = needle
        return needle.withUTF8 { n in  // the literal's own bytes: no array per call (hot path)
            guard let first = n.first, body.readableBytes >= n.count else { return false }
            return body.withUnsafeReadableBytes { raw in
                var i = 0
                let last = raw.count - n.count
                while i <= last {
                    if raw[i] == first {
                        var j = 1
                        while j < n.count, raw[i + j] == n[j] { j += 1 }
                        if j == n.count { return true }
                    }
                    i += 1
                }
                return false
            }
        }
    }

    init?(_ body: ByteBuffer) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] else { return nil }
        if let id = object["id"], !(id is NSNull),
           let data = try? JSONSerialization.data(withJSONObject: [id], options: [.fragmentsAllowed]) {
            idJSON = String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        }
    }
}
