import AsyncHTTPClient
import NIOCore

/// Turns an upstream body into the adapter's event stream, ending with an SSE `error` event
/// when the upstream breaks off mid-answer (the status line has long been sent by then).
enum StreamRelay {
    static func relay<S: AsyncSequence & Sendable>(
        _ upstream: S, upstream name: String, transform: @escaping @Sendable (ByteBuffer) throws -> [ByteBuffer] = { [$0] }
    ) -> AsyncThrowingStream<ByteBuffer, any Error> where S.Element == ByteBuffer {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await chunk in upstream {
                        for out in try transform(chunk) where out.readableBytes > 0 { continuation.yield(out) }
                    }
                    continuation.finish()
                } catch let error as LLMError {
                    continuation.yield(error.sseEvent)
                    continuation.finish()
                } catch {
                    continuation.yield(UpstreamCaller.transportError(error, upstream: name).sseEvent)
                    continuation.finish()
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
