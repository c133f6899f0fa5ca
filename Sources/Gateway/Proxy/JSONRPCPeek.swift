import Foundation
import NIOCore

/// The `method` and `id` of a kept MCP request body (for step-up decisions and for
/// answering with a JSON-RPC error object). Nothing else of the body is read.
struct JSONRPCPeek: Sendable {
    var method: String?
    /// The request id as JSON text (`1`, `"abc"`), nil for a notification.
    var idJSON: String?

    init?(_ body: ByteBuffer) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] else { return nil }
        method = object["method"] as? String
        if let id = object["id"], !(id is NSNull),
           let data = try? JSONSerialization.data(withJSONObject: [id], options: [.fragmentsAllowed]) {
            idJSON = String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        }
    }
}
