import Foundation
import NIOCore

/// The `method` and `id` of a kept MCP request body (for step-up decisions and for
/// answering with a JSON-RPC error object). Nothing else of the body is read.
struct JSONRPCPeek: Sendable {
    var method: String?
    /// The request id as JSON text (`1`, `"abc"`), nil for a notification.
    var idJSON: String?

    /// Whether `needle` occurs in `body` (bytes compared, no parsing).
    static func mentions(_ needle: String, in body: ByteBuffer) -> Bool {
        let n = Array(needle.utf8)
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

    init?(_ body: ByteBuffer) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] else { return nil }
        method = object["method"] as? String
        if let id = object["id"], !(id is NSNull),
           let data = try? JSONSerialization.data(withJSONObject: [id], options: [.fragmentsAllowed]) {
            idJSON = String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        }
    }
}
