import NIOCore

/// Thrown when a streamed request body passes its limit.
struct BodyLimitExceeded: Error {}

/// Passes a request body through, counting bytes; throws ``BodyLimitExceeded`` past `limit`.
/// Nothing is buffered: each chunk goes upstream as it arrives.
struct LimitedBody<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let limit: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let limit: Int
        var seen = 0

        mutating func next() async throws -> ByteBuffer? {
            guard let chunk = try await base.next() else { return nil }
            seen += chunk.readableBytes
            if seen > limit { throw BodyLimitExceeded() }
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), limit: limit) }
}
