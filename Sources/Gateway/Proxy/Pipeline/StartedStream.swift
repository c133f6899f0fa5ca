import AsyncHTTPClient
import NIOCore

/// An upstream answer's body as the async driver streams it back: the bytes read to judge it
/// (an event stream's first event, see ``AnswerPolicy``; none for most answers), then the
/// rest, unbuffered.
///
/// `@unchecked Sendable`: one task at a time uses it — the pipeline while it reads the first
/// event, then the response writer — never two at once.
final class StartedStream: @unchecked Sendable {
    private(set) var prefix: ByteBuffer
    private var iterator: HTTPClientResponse.Body.AsyncIterator
    private var ended = false
    private var failure: (any Error)?

    private init(prefix: ByteBuffer, iterator: HTTPClientResponse.Body.AsyncIterator) {
        self.prefix = prefix
        self.iterator = iterator
    }

    /// A stream nothing was read of yet (the common answer: passed on as it comes).
    static func unread(_ body: HTTPClientResponse.Body) -> StartedStream {
        StartedStream(prefix: ByteBuffer(), iterator: body.makeAsyncIterator())
    }

    /// Reads until the first event with data has ended, the stream ends, or `limit` bytes.
    /// A read error ends the prefix there; the writer meets it on `next()` (so a cut-off
    /// stream is cut off for the caller too, never made to look complete).
    static func read(_ body: HTTPClientResponse.Body, upTo limit: Int) async -> StartedStream {
        let stream = StartedStream(prefix: ByteBuffer(), iterator: body.makeAsyncIterator())
        while stream.prefix.readableBytes < limit, !SSEFirstEvent.isComplete(stream.prefix) {
            do {
                guard var chunk = try await stream.iterator.next() else {
                    stream.ended = true
                    break
                }
                stream.prefix.writeBuffer(&chunk)
            } catch {
                stream.failure = error
                break
            }
        }
        return stream
    }

    /// The next part after the prefix; nil at the end.
    func next() async throws -> ByteBuffer? {
        if let failure { throw failure }
        if ended { return nil }
        return try await iterator.next()
    }

    /// Reads and drops the rest (an answer about to be replaced by a replay).
    func discardRest() async {
        var dropped = 0
        while dropped < 1 << 20, let chunk = try? await next() { dropped += chunk.readableBytes }
        ended = true
    }
}
