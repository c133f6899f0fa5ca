import Foundation
import NIOCore
import Testing
@testable import LLMAdapter
import SwitchboardJSON
import SwitchboardTesting

/// The AWS event stream framing (Bedrock's streaming answers) and the unwrapping of its
/// frames into Messages SSE events.
@Suite("AWS event stream")
struct EventStreamTests {
    static func string(_ buffer: ByteBuffer) -> String { String(buffer: buffer) }

    static let first = EventStreamMessage(
        headers: [":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"],
        payload: Array(#"{"bytes":"eyJ0eXBlIjoicGluZyJ9"}"#.utf8))
    static let second = EventStreamMessage(headers: [":message-type": "event", ":event-type": "chunk"], payload: Array(repeating: 0x41, count: 300))

    // MARK: - CRC-32

    @Test func crcCheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
        // zlib.crc32(b"The quick brown fox jumps over the lazy dog")
        #expect(CRC32.checksum(Array("The quick brown fox jumps over the lazy dog".utf8)) == 0x414F_A339)
    }

    @Test func crcSeedContinues() {
        let whole = CRC32.checksum(Array("123456789".utf8))
        let split = CRC32.checksum(Array("6789".utf8), seed: CRC32.checksum(Array("12345".utf8)))
        #expect(split == whole)
    }

    // MARK: - Round trips, any chunking

    static func feed(_ chunks: [ByteBuffer]) throws -> (messages: [EventStreamMessage], pending: Int) {
        var decoder = EventStreamDecoder()
        var messages: [EventStreamMessage] = []
        for chunk in chunks { messages += try decoder.feed(chunk) }
        return (messages, decoder.pendingBytes)
    }

    @Test func wholeMessage() throws {
        let result = try Self.feed([Self.first.encoded()])
        #expect(result.messages == [Self.first])
        #expect(result.pending == 0)
    }

    @Test func byteByByte() throws {
        let encoded = Array(Self.first.encoded().readableBytesView)
        var decoder = EventStreamDecoder()
        var messages: [EventStreamMessage] = []
        for (i, byte) in encoded.enumerated() {
            let out = try decoder.feed(ByteBuffer(bytes: [byte]))
            // Nothing comes out until the last byte.
            if i < encoded.count - 1 { #expect(out.isEmpty) }
            messages += out
        }
        #expect(messages == [Self.first])
        #expect(decoder.pendingBytes == 0)
    }

    @Test func inHalves() throws {
        let encoded = Array(Self.first.encoded().readableBytesView)
        let half = encoded.count / 2
        let result = try Self.feed([ByteBuffer(bytes: encoded[..<half]), ByteBuffer(bytes: encoded[half...])])
        #expect(result.messages == [Self.first])
    }

    @Test(arguments: [1, 5, 11, 12, 13, 64, 1000])
    func twoMessagesInFixedChunks(_ size: Int) throws {
        let all = Array(Self.first.encoded().readableBytesView) + Array(Self.second.encoded().readableBytesView)
        let chunks = stride(from: 0, to: all.count, by: size).map { ByteBuffer(bytes: all[$0..<min($0 + size, all.count)]) }
        let result = try Self.feed(chunks)
        #expect(result.messages == [Self.first, Self.second])
        #expect(result.pending == 0)
    }

    @Test func twoMessagesInOneChunk() throws {
        var both = Self.first.encoded()
        var tail = Self.second.encoded()
        both.writeBuffer(&tail)
        let result = try Self.feed([both])
        #expect(result.messages == [Self.first, Self.second])
    }

    @Test func aMessageAndAHalf() throws {
        let all = Array(Self.first.encoded().readableBytesView) + Array(Self.second.encoded().readableBytesView)
        let cut = Self.first.encoded().readableBytes + 20
        var decoder = EventStreamDecoder()
        #expect(try decoder.feed(ByteBuffer(bytes: all[..<cut])) == [Self.first])
        #expect(decoder.pendingBytes == 20)
        #expect(try decoder.feed(ByteBuffer(bytes: all[cut...])) == [Self.second])
        #expect(decoder.pendingBytes == 0)
    }

    @Test func emptyPayloadAndNoHeaders() throws {
        let empty = EventStreamMessage(headers: [:], payload: [])
        #expect(empty.encoded().readableBytes == 16)
        #expect(try Self.feed([empty.encoded()]).messages == [empty])
    }

    // MARK: - Damage

    @Test func flippedPayloadByte() {
        var bytes = Array(Self.first.encoded().readableBytesView)
        bytes[bytes.count - 6] ^= 0x01
        var decoder = EventStreamDecoder()
        #expect(throws: EventStreamError.badMessageChecksum) { try decoder.feed(ByteBuffer(bytes: bytes)) }
    }

    @Test func flippedHeaderByte() {
        var bytes = Array(Self.first.encoded().readableBytesView)
        bytes[14] ^= 0x20
        var decoder = EventStreamDecoder()
        #expect(throws: EventStreamError.badMessageChecksum) { try decoder.feed(ByteBuffer(bytes: bytes)) }
    }

    @Test(arguments: 0..<12)
    func flippedPreludeByte(_ index: Int) {
        var bytes = Array(Self.first.encoded().readableBytesView)
        bytes[index] ^= 0x01
        var decoder = EventStreamDecoder()
        #expect(throws: EventStreamError.badPreludeChecksum) { try decoder.feed(ByteBuffer(bytes: bytes)) }
    }

    @Test func tooShortALengthWithAGoodPreludeCRC() {
        // total 15 (< 16), headers 0, prelude CRC correct: a length error, not a checksum one.
        var prelude = ByteBuffer()
        prelude.writeInteger(UInt32(15))
        prelude.writeInteger(UInt32(0))
        prelude.writeInteger(CRC32.checksum(prelude.readableBytesView))
        var decoder = EventStreamDecoder()
        #expect(throws: EventStreamError.badLength(15)) { try decoder.feed(prelude) }
    }

    // MARK: - An independent vector (bytes built with Python's zlib.crc32)

    /// Headers `:event-type`=chunk, `:content-type`=application/json, `:message-type`=event
    /// (type 7, in that order), payload `{"bytes":"<base64 of a content_block_delta>"}`:
    /// struct.pack('>II', total, hlen) + struct.pack('>I', zlib.crc32(prelude)) + … + zlib.crc32(all).
    static let pythonFrame = TestHTTP.bytes(hex:
        "000000d70000004bbff9e4380b3a6576656e742d747970650700056368756e6b0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e"
        + "0d3a6d6573736167652d747970650700056576656e747b226279746573223a2265794a306558426c496a6f695932397564475675644639696247396a6131396b"
        + "5a57783059534973496d6c755a475634496a6f774c434a6b5a5778305953493665794a306558426c496a6f69644756346446396b5a57783059534973496e526c"
        + "654851694f694a4961534a3966513d3d227d4b8e9495")
    static let pythonInner = #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#

    @Test func decodesAFrameBuiltElsewhere() throws {
        #expect(Self.pythonFrame.count == 215)
        let result = try Self.feed([ByteBuffer(bytes: Self.pythonFrame)])
        try #require(result.messages.count == 1)
        let message = result.messages[0]
        #expect(message.headers == [":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"])
        let payload = try #require(JSONValue.parse(message.payload))
        let inner = try #require(payload["bytes"]?.string.flatMap { Data(base64Encoded: $0) })
        #expect(String(decoding: inner, as: UTF8.self) == Self.pythonInner)
    }

    @Test func encodedPreludeMatchesPython() {
        // Headers are written sorted by name, the Python frame has them in another order: the
        // lengths, and so the prelude with its CRC, are the same; the message CRC is checked.
        let message = EventStreamMessage(
            headers: [":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"],
            payload: Array(Self.pythonFrame[(12 + 0x4B)..<(Self.pythonFrame.count - 4)]))
        let ours = Array(message.encoded().readableBytesView)
        #expect(ours.count == Self.pythonFrame.count)
        // Same total and header lengths, so the same prelude and prelude CRC.
        #expect(Array(ours[0..<12]) == Array(Self.pythonFrame[0..<12]))
        #expect(CRC32.checksum(ours[0..<(ours.count - 4)]) == UInt32(bigEndianBytes: ours[(ours.count - 4)...]))
    }

    /// Every header type (bool true, byte, short, int, long, bytes, string, timestamp, uuid),
    /// payload `{}`; only the string header is kept.
    static let allHeaderTypes = TestHTTP.bytes(hex:
        "0000007e0000006c67c4acb404666c616700016202070573686f727403fffe05636f756e74040000002a046c6f6e67050000000000000001037261770600030001"
        + "020b3a6576656e742d747970650700056368756e6b047768656e080000018bcfe5680002696409000102030405060708090a0b0c0d0e0f7b7d547657cc")

    @Test func skipsEveryOtherHeaderType() throws {
        let result = try Self.feed([ByteBuffer(bytes: Self.allHeaderTypes)])
        #expect(result.messages == [EventStreamMessage(headers: [":event-type": "chunk"], payload: Array("{}".utf8))])
    }

    // MARK: - Bedrock frames → Messages SSE

    static func chunk(_ inner: String) -> ByteBuffer {
        let payload: JSONValue = ["bytes": .string(Data(inner.utf8).base64EncodedString())]
        return EventStreamMessage(
            headers: [":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"],
            payload: Array(payload.encoded())
        ).encoded()
    }

    static let messageStart =
        #"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"usage":{"input_tokens":3,"output_tokens":1}}}"#

    @Test func chunkBecomesAnSSEEvent() {
        let events = StreamUnwrapper().events(from: Self.chunk(Self.messageStart))
        #expect(events.map(Self.string) == ["event: message_start\ndata: \(Self.messageStart)\n\n"])
    }

    @Test func pythonFrameBecomesAnSSEEvent() {
        let events = StreamUnwrapper().events(from: ByteBuffer(bytes: Self.pythonFrame))
        #expect(events.map(Self.string) == ["event: content_block_delta\ndata: \(Self.pythonInner)\n\n"])
    }

    @Test func severalChunksSplitAnywhere() {
        let inners = [Self.messageStart, #"{"type":"ping"}"#, #"{"type":"message_stop"}"#]
        let all = inners.flatMap { Array(Self.chunk($0).readableBytesView) }
        let unwrapper = StreamUnwrapper()
        var events: [String] = []
        for start in stride(from: 0, to: all.count, by: 7) {
            events += unwrapper.events(from: ByteBuffer(bytes: all[start..<min(start + 7, all.count)])).map(Self.string)
        }
        #expect(events == [
            "event: message_start\ndata: \(Self.messageStart)\n\n", "event: ping\ndata: {\"type\":\"ping\"}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ])
        #expect(!unwrapper.hasPendingBytes)
    }

    @Test func halfAFrameIsPending() {
        let all = Array(Self.chunk(#"{"type":"ping"}"#).readableBytesView)
        let unwrapper = StreamUnwrapper()
        #expect(unwrapper.events(from: ByteBuffer(bytes: all[..<20])).isEmpty)
        #expect(unwrapper.hasPendingBytes)
    }

    @Test func otherEventTypesAreSkipped() {
        let other = EventStreamMessage(headers: [":message-type": "event", ":event-type": "metadata"], payload: Array("{}".utf8)).encoded()
        #expect(StreamUnwrapper().events(from: other).isEmpty)
    }

    /// The one SSE `error` event a failure becomes: `{"type":"error","error":{"type":…,"message":…}}`.
    static func errorEvent(_ events: [ByteBuffer]) throws -> (type: String, message: String) {
        let last = try #require(events.last.map(Self.string))
        let prefix = "event: error\ndata: "
        try #require(last.hasPrefix(prefix) && last.hasSuffix("\n\n"), "not an error event: \(last)")
        let json = try #require(JSONValue.parse(Array(last.dropFirst(prefix.count).dropLast(2).utf8)))
        #expect(json["type"] == "error")
        return (json["error"]?["type"]?.string ?? "", json["error"]?["message"]?.string ?? "")
    }

    static func exceptionFrame(_ exception: String, message: String = "m") -> ByteBuffer {
        let payload: JSONValue = ["message": .string(message)]
        return EventStreamMessage(
            headers: [":message-type": "exception", ":exception-type": exception, ":content-type": "application/json"],
            payload: Array(payload.encoded())
        ).encoded()
    }

    @Test func throttlingExceptionFrame() throws {
        let unwrapper = StreamUnwrapper()
        let events = unwrapper.events(from: Self.exceptionFrame("throttlingException", message: "Too many requests, please wait before trying again."))
        #expect(events.count == 1)
        let error = try Self.errorEvent(events)
        #expect(error.type == "rate_limit_error")
        #expect(error.message.contains("Too many requests"))
        // The same exception as an LLMError: 429 rate_limit_error.
        let mapped = BedrockBackend.map(exception: "throttlingException", status: nil, message: "Too many requests")
        #expect(mapped.status == 429)
        #expect(mapped.type == "rate_limit_error")
        // After a failure the leftovers do not count as a cut-off stream, and nothing more comes out.
        #expect(!unwrapper.hasPendingBytes)
        #expect(unwrapper.events(from: Self.chunk(#"{"type":"ping"}"#)).isEmpty)
    }

    @Test func eventsBeforeAnExceptionComeFirst() throws {
        var both = Self.chunk(#"{"type":"ping"}"#)
        var exception = Self.exceptionFrame("throttlingException")
        both.writeBuffer(&exception)
        let events = StreamUnwrapper().events(from: both)
        #expect(events.count == 2)
        #expect(events.first.map(Self.string) == "event: ping\ndata: {\"type\":\"ping\"}\n\n")
        #expect(try Self.errorEvent(events).type == "rate_limit_error")
    }

    @Test(arguments: [
        ("throttlingException", 429, "rate_limit_error"),
        ("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/", 429, "rate_limit_error"),
        ("com.amazon.bedrock#ThrottlingException", 429, "rate_limit_error"),
        ("validationException", 400, "invalid_request_error"),
        ("modelStreamErrorException", 502, "api_error"),
        ("serviceUnavailableException", 529, "overloaded_error"),
        ("modelTimeoutException", 504, "timeout_error"),
        ("internalServerException", 500, "api_error"),
    ])
    func exceptionFrames(_ exception: String, _ status: Int, _ type: String) throws {
        let mapped = BedrockBackend.map(exception: exception, status: nil, message: "m")
        #expect(mapped.status == status)
        #expect(mapped.type == type)
        #expect(try Self.errorEvent(StreamUnwrapper().events(from: Self.exceptionFrame(exception))).type == type)
    }

    @Test func malformedStreamIsAnAPIError() throws {
        var bytes = Array(Self.chunk(#"{"type":"ping"}"#).readableBytesView)
        bytes[bytes.count - 6] ^= 0xFF
        let unwrapper = StreamUnwrapper()
        let error = try Self.errorEvent(unwrapper.events(from: ByteBuffer(bytes: bytes)))
        #expect(error.type == "api_error")
        #expect(error.message.contains("badMessageChecksum"))
        #expect(!unwrapper.hasPendingBytes)
    }

    @Test func chunkThatIsNotAMessagesEvent() throws {
        let frame = EventStreamMessage(headers: [":message-type": "event", ":event-type": "chunk"], payload: Array(#"{"bytes":"bm90IGpzb24="}"#.utf8)).encoded()
        let error = try Self.errorEvent(StreamUnwrapper().events(from: frame))
        #expect(error.type == "api_error")
        #expect(error.message.contains("not a Messages event"))
    }
}

private extension UInt32 {
    init(bigEndianBytes bytes: ArraySlice<UInt8>) {
        self = bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }
}
