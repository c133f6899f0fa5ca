import NIOCore
import Synchronization

/// Thrown when a streamed request body passes its limit.
struct BodyLimitExceeded: Error {}

/// Thrown when the HTTP client asks for a streamed body a second time (it retries a request
/// on a fresh connection): the inbound body can be read only once, so that request fails
/// cleanly instead of the server trapping on a second iterator.
struct BodyAlreadyStreamed: Error {}

/// Passes a request body through, counting bytes; throws ``BodyLimitExceeded`` past `limit`.
/// Nothing is buffered: each chunk goes upstream as it arrives.
struct LimitedBody<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let limit: Int
    private let used = UsedFlag()

    init(base: Base, limit: Int) {
        self.base = base
        self.limit = limit
    }

    final class UsedFlag: Sendable {
        let value = Mutex(false)
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator?
        let limit: Int
        var seen = 0

        mutating func next() async throws -> ByteBuffer? {
            guard base != nil else { throw BodyAlreadyStreamed() }
            guard let chunk = try await base!.next() else { return nil }
            seen += chunk.readableBytes
            if seen > limit { throw BodyLimitExceeded() }
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        let first = used.value.withLock { used in
            defer { used = true }
            return !used
        }
        return AsyncIterator(base: first ? base.makeAsyncIterator() : nil, limit: limit)
    }
}
