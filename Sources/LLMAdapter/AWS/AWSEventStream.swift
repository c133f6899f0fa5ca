import NIOCore

/// One message of the AWS event stream (`application/vnd.amazon.eventstream`), the framing of
/// Bedrock's `InvokeModelWithResponseStream`:
///
///     total length (u32) · headers length (u32) · prelude CRC (u32) · headers · payload · message CRC (u32)
///
/// All integers are big-endian; each CRC is CRC-32 over everything before it.
struct EventStreamMessage: Sendable, Equatable {
    var headers: [String: String]
    var payload: [UInt8]

    /// Only string-valued headers matter to Bedrock; other types are skipped over correctly.
    static let maxMessageLength = 16 * 1024 * 1024

    /// Frames a message (the Bedrock stand-ins in tests speak through this).
    func encoded() -> ByteBuffer {
        var headerBytes = ByteBuffer()
        for name in headers.keys.sorted() {
            let value = Array(headers[name]!.utf8)
            headerBytes.writeInteger(UInt8(name.utf8.count))
            headerBytes.writeString(name)
            headerBytes.writeInteger(UInt8(7))
            headerBytes.writeInteger(UInt16(value.count))
            headerBytes.writeBytes(value)
        }
        let total = 12 + headerBytes.readableBytes + payload.count + 4
        var out = ByteBuffer()
        out.writeInteger(UInt32(total))
        out.writeInteger(UInt32(headerBytes.readableBytes))
        out.writeInteger(CRC32.checksum(out.readableBytesView))
        out.writeBuffer(&headerBytes)
        out.writeBytes(payload)
        out.writeInteger(CRC32.checksum(out.readableBytesView))
        return out
    }
}

enum EventStreamError: Error, Equatable {
    case badPreludeChecksum
    case badMessageChecksum
    case badLength(Int)
    case badHeader
    case truncated
}

/// Splits a byte stream into event stream messages, whatever the chunking.
struct EventStreamDecoder: Sendable {
    private var buffer = ByteBuffer()

    init() {}

    /// Appends bytes and returns every message now complete.
    mutating func feed(_ chunk: ByteBuffer) throws(EventStreamError) -> [EventStreamMessage] {
        var chunk = chunk
        buffer.writeBuffer(&chunk)
        var messages: [EventStreamMessage] = []
        while let message = try next() { messages.append(message) }
        buffer.discardReadBytes()
        return messages
    }

    /// Bytes that arrived but do not yet make a message (a stream that ends here was cut off).
    var pendingBytes: Int { buffer.readableBytes }

    private mutating func next() throws(EventStreamError) -> EventStreamMessage? {
        guard buffer.readableBytes >= 12,
              let total = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self).map(Int.init),
              let headersLength = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt32.self).map(Int.init),
              let preludeCRC = buffer.getInteger(at: buffer.readerIndex + 8, as: UInt32.self)
        else { return nil }
        guard CRC32.checksum(buffer.readableBytesView.prefix(8)) == preludeCRC else { throw .badPreludeChecksum }
        guard total >= 16, total <= EventStreamMessage.maxMessageLength, headersLength <= total - 16 else { throw .badLength(total) }
        guard buffer.readableBytes >= total else { return nil }
        let bytes = buffer.readableBytesView.prefix(total)
        let messageCRC = buffer.getInteger(at: buffer.readerIndex + total - 4, as: UInt32.self)!
        guard CRC32.checksum(bytes.prefix(total - 4)) == messageCRC else { throw .badMessageChecksum }
        var headerSlice = buffer.getSlice(at: buffer.readerIndex + 12, length: headersLength)!
        let payload = Array(bytes.dropFirst(12 + headersLength).prefix(total - 16 - headersLength))
        buffer.moveReaderIndex(forwardBy: total)
        return EventStreamMessage(headers: try Self.headers(&headerSlice), payload: payload)
    }

    private static func headers(_ slice: inout ByteBuffer) throws(EventStreamError) -> [String: String] {
        var headers: [String: String] = [:]
        while slice.readableBytes > 0 {
            guard let nameLength = slice.readInteger(as: UInt8.self), let name = slice.readString(length: Int(nameLength)),
                  let type = slice.readInteger(as: UInt8.self) else { throw .badHeader }
            // Value sizes by type: 0/1 bool (none), 2 byte, 3 short, 4 int, 5 long, 6 bytes, 7 string, 8 timestamp, 9 uuid.
            switch type {
            case 0, 1: break
            case 2: guard slice.readInteger(as: UInt8.self) != nil else { throw .badHeader }
            case 3: guard slice.readInteger(as: UInt16.self) != nil else { throw .badHeader }
            case 4: guard slice.readInteger(as: UInt32.self) != nil else { throw .badHeader }
            case 5, 8: guard slice.readInteger(as: UInt64.self) != nil else { throw .badHeader }
            case 6, 7:
                guard let length = slice.readInteger(as: UInt16.self), let value = slice.readBytes(length: Int(length)) else { throw .badHeader }
                if type == 7 { headers[name] = String(decoding: value, as: UTF8.self) }
            case 9: guard slice.readBytes(length: 16) != nil else { throw .badHeader }
            default: throw .badHeader
            }
        }
        return headers
    }
}
