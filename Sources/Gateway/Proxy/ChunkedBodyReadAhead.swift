import Hummingbird
import NIOCore

/// A request body without a declared length (chunked) is read up to `min(max_replay_body,
/// max_request_body)` before the upstream request is opened, so that:
///
/// - a body over the connection's limit found within that read gets 413 and the upstream
///   receives nothing — not a head and the first bytes of a body it may already be acting on;
/// - a body that ends within it goes upstream whole, with a `Content-Length`, and can be
///   replayed after a refresh or a step-up like any small body.
///
/// A longer body streams (memory stays bounded): the bytes read so far, then the rest. If it
/// passes the limit later, the upstream request is cut short of its last chunk and its
/// connection closed — a chunked message without its terminating chunk is incomplete to every
/// HTTP/1.1 server (RFC 9112 §7.1), never mistaken for a whole one.
enum ChunkedBodyReadAhead {
    enum Outcome {
        case whole(ByteBuffer)
        case tooLarge
        /// Longer than the read-ahead: what was read, then the rest as it comes.
        case started(RequestBody)
    }

    static func read(_ body: RequestBody, upTo readAhead: Int, limit: Int) async throws -> Outcome {
        let rest = Rest(iterator: body.makeAsyncIterator())
        var read = ByteBuffer()
        while var chunk = try await rest.next() {
            read.writeBuffer(&chunk)
            if read.readableBytes > limit { return .tooLarge }
            if read.readableBytes > readAhead {
                rest.prefix = read
                return .started(RequestBody(asyncSequence: rest))
            }
        }
        return .whole(read)
    }

    /// The bytes read ahead, then the rest of the body.
    ///
    /// `@unchecked Sendable`: one task at a time uses it — the read-ahead, then the upstream
    /// client's body writer — never two at once; iterated once (``LimitedBody`` refuses a second
    /// iteration before it gets here).
    final class Rest: AsyncSequence, AsyncIteratorProtocol, @unchecked Sendable {
        typealias Element = ByteBuffer
        var prefix: ByteBuffer?
        private var iterator: RequestBody.AsyncIterator

        init(iterator: RequestBody.AsyncIterator) {
            self.iterator = iterator
        }

        func next() async throws -> ByteBuffer? {
            if let p = prefix {
                prefix = nil
                return p
            }
            return try await iterator.next()
        }

        func makeAsyncIterator() -> Rest { self }
    }
}
