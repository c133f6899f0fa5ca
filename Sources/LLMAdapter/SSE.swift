import NIOCore
import SwitchboardJSON

/// Server-sent events as the Messages API writes them: `event: <type>\ndata: <json>\n\n`.
enum SSE {
    static func event(_ name: String, _ data: JSONValue) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("event: ")
        buffer.writeString(name)
        buffer.writeString("\ndata: ")
        buffer.writeBytes(data.encoded())
        buffer.writeString("\n\n")
        return buffer
    }
}
