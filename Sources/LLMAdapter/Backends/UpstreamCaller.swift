import AsyncHTTPClient
import Foundation
import Logging
import Synchronization
import NIOCore
import NIOHTTP1

/// Sends a request to a remote model API with retries, deadlines and error mapping; shared by
/// the `anthropic` and `bedrock` backends.
struct UpstreamCaller: Sendable {
    let client: HTTPClient
    let retry: RetryPolicy
    /// Deadline of one attempt: until the whole answer arrived (non-streaming) or until the
    /// answer's head arrived (streaming; the idle read timeout of the client covers the rest).
    let timeout: Duration
    let maxResponseBody: Int
    let logger: Logger
    /// Where upstream errors come from, for messages ("the Anthropic API", "Bedrock").
    let upstreamName: String

    /// A failed answer from upstream, before any mapping.
    struct Failure: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    /// The response of a successful (2xx) attempt and that attempt's deadline. Non-2xx answers
    /// are read, retried when worth it (non-streaming only) and turned into an `LLMError` by `map`.
    func send(
        streaming: Bool, requestID: String, build: () throws(LLMError) -> HTTPClientRequest,
        map: (Failure) -> LLMError
    ) async throws(LLMError) -> (HTTPClientResponse, deadline: ContinuousClock.Instant) {
        var retryNumber = 0
        while true {
            let request = try build()
            let deadline = ContinuousClock.now + timeout
            let outcome: Result<HTTPClientResponse, LLMError>
            do {
                let response = try await client.execute(request, timeout: .nanoseconds(timeout.nanosecondsClamped), logger: logger)
                outcome = .success(response)
            } catch {
                outcome = .failure(Self.transportError(error, upstream: upstreamName))
            }
            switch outcome {
            case .success(let response) where (200..<300).contains(Int(response.status.code)):
                return (response, deadline)
            case .success(let response):
                let status = Int(response.status.code)
                let body = (try? await Self.collect(response.body, upTo: 1 << 20, until: deadline)) ?? ByteBuffer()
                let failure = Failure(status: status, headers: response.headers, body: body)
                let retryAfter = response.headers.first(name: "retry-after")
                if !streaming, RetryPolicy.isRetryable(status: status), let wait = retry.delay(beforeRetry: retryNumber, retryAfter: retryAfter) {
                    logger.notice("upstream answered \(status); retrying", metadata: ["request_id": "\(requestID)", "upstream": "\(upstreamName)", "retry": "\(retryNumber + 1)"])
                    retryNumber += 1
                    try? await Task.sleep(for: wait)
                    continue
                }
                throw map(failure)
            case .failure(let error):
                // A timeout may have reached the model already; only unreachable hosts are retried.
                if !streaming, error.status == 502, let wait = retry.delay(beforeRetry: retryNumber, retryAfter: nil) {
                    logger.notice("upstream unreachable; retrying", metadata: ["request_id": "\(requestID)", "upstream": "\(upstreamName)", "retry": "\(retryNumber + 1)"])
                    retryNumber += 1
                    try? await Task.sleep(for: wait)
                    continue
                }
                throw error
            }
        }
    }

    /// Reads a whole 2xx answer, within the size limit and the attempt's deadline (the HTTP
    /// client's own deadline ends with the response head).
    func collect(_ response: HTTPClientResponse, until deadline: ContinuousClock.Instant) async throws(LLMError) -> ByteBuffer {
        do {
            return try await Self.collect(response.body, upTo: maxResponseBody, until: deadline)
        } catch let error as NIOTooManyBytesError {
            _ = error
            throw .badGateway("\(upstreamName) answered with more than \(maxResponseBody) bytes")
        } catch {
            throw Self.transportError(error, upstream: upstreamName)
        }
    }

    /// The body, or `deadlineExceeded` at `deadline` — without waiting for a body read that
    /// does not react to cancellation (it is cancelled and left to end on its own).
    static func collect(_ body: HTTPClientResponse.Body, upTo limit: Int, until deadline: ContinuousClock.Instant) async throws -> ByteBuffer {
        let reader = Task { try await body.collect(upTo: limit) }
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ByteBuffer, any Error>) in
            let shot = OneShot(continuation)
            let timer = Task {
                try? await Task.sleep(until: deadline, clock: .continuous)
                guard !Task.isCancelled else { return }
                // The deadline's answer first, then the read cancelled: the other way round, the
                // cancelled read could end first and its error (a 502, "unreachable") won the
                // race — a flaky 502 where a stalled body must be a 504.
                shot.finish(.failure(HTTPClientError.deadlineExceeded))
                reader.cancel()
            }
            Task {
                var result = await reader.result
                timer.cancel()
                // A read that failed at or past the deadline failed because of it (the HTTP
                // client's own deadline, or the cancellation above): a timeout, whatever its error.
                if case .failure = result, ContinuousClock.now >= deadline { result = .failure(HTTPClientError.deadlineExceeded) }
                shot.finish(result)
            }
        }
    }

    static func transportError(_ error: any Error, upstream: String) -> LLMError {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout:
                return .timeout("\(upstream) did not answer in time")
            case .connectTimeout:
                return .badGateway("\(upstream) is unreachable (connect timeout)")
            default:
                return .badGateway("\(upstream) is unreachable or broke the connection (\(error.shortDescription))")
            }
        }
        return .badGateway("\(upstream) is unreachable (\(String(describing: type(of: error))))")
    }
}

extension HTTPClientError {
    /// A short, secret-free description (no URL, no header).
    var shortDescription: String {
        switch self {
        case .remoteConnectionClosed: return "connection closed"
        case .cancelled: return "cancelled"
        case .connectTimeout: return "connect timeout"
        case .readTimeout: return "read timeout"
        case .deadlineExceeded: return "deadline exceeded"
        case .invalidURL: return "invalid URL"
        default: return "connection error"
        }
    }
}

extension Duration {
    var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        if seconds > Int64.max / 1_000_000_000 - 1 { return Int64.max }
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// Resumes a continuation once: the first of several racing results wins.
final class OneShot<Value: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<Value, any Error>?>

    init(_ continuation: CheckedContinuation<Value, any Error>) {
        self.continuation = Mutex(continuation)
    }

    func finish(_ result: Result<Value, any Error>) {
        let pending = continuation.withLock { stored -> CheckedContinuation<Value, any Error>? in
            defer { stored = nil }
            return stored
        }
        pending?.resume(with: result)
    }
}
