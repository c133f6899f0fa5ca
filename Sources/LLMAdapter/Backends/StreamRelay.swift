import AsyncHTTPClient
import NIOCore

/// Turns an upstream body into the adapter's event stream. Only whole events go out: a stream
/// that breaks off mid-event drops the partial event and ends with one SSE `error` event (the
/// status line has long been sent by then).
enum StreamRelay {
    /// `transform` turns upstream bytes into whole SSE events (Bedrock's frames); without one,
    /// the bytes are SSE already and are cut at event boundaries here. `atEnd` may add a last
    /// event when the upstream ended cleanly.
    static func relay<S: AsyncSequence & Sendable>(
        _ upstream: S, upstream name: String,
        transform: (@Sendable (ByteBuffer) -> [ByteBuffer])? = nil,
        atEnd: @escaping @Sendable () -> [ByteBuffer] = { [] }
    ) -> AsyncThrowingStream<ByteBuffer, any Error> where S.Element == ByteBuffer {
        AsyncThrowingStream { continuation in
            let task = Task {
                var splitter = SSEEventSplitter()
                do {
                    for try await chunk in upstream {
                        let events = transform?(chunk) ?? splitter.feed(chunk)
                        for event in events where event.readableBytes > 0 { continuation.yield(event) }
                    }
                    for event in atEnd() { continuation.yield(event) }
                    continuation.finish()
                } catch {
                    continuation.yield(LLMError.badGateway("\(name) broke off the answer mid-stream").sseEvent)
                    continuation.finish()
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// Cuts an SSE byte stream after each blank line (`\n\n` or `\r\n\r\n`): complete events go
/// out as soon as they end, a partial one waits for the rest.
struct SSEEventSplitter: Sendable {
    private var pending = ByteBuffer()

    mutating func feed(_ chunk: ByteBuffer) -> [ByteBuffer] {
        var chunk = chunk
        if pending.readableBytes == 0, let end = Self.lastBoundary(in: chunk), end == chunk.readableBytes {
            return [chunk]  // the common case: whole events, no copy
        }
        pending.writeBuffer(&chunk)
        guard let end = Self.lastBoundary(in: pending) else { return [] }
        let events = pending.readSlice(length: end)!
        pending.discardReadBytes()
        return [events]
    }

    /// Bytes up to and including the last blank line, or nil when there is none.
    static func lastBoundary(in buffer: ByteBuffer) -> Int? {
        let view = buffer.readableBytesView
        guard view.count >= 2 else { return nil }
        var i = view.count - 1
        while i >= 1 {
            let a = view[view.startIndex + i - 1], b = view[view.startIndex + i]
            if b == 0x0A, a == 0x0A { return i + 1 }
            if b == 0x0A, a == 0x0D, i >= 3, view[view.startIndex + i - 2] == 0x0A, view[view.startIndex + i - 3] == 0x0D { return i + 1 }
            i -= 1
        }
        return nil
    }
}
