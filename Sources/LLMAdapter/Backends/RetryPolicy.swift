import Foundation

/// When and how long to wait before another attempt at a remote backend.
///
/// Retried: 429, 529 and 5xx answers, and connection failures, before any byte reached the
/// client. The wait doubles from `baseDelay` (with ±20% jitter), never above `maxDelay`; a
/// `retry-after` from upstream is honoured when it fits under `maxDelay`, and ends the retries
/// (the error is passed on with it) when it does not.
struct RetryPolicy: Sendable, Equatable {
    var maxRetries: Int = 2
    var baseDelay: Duration = .milliseconds(500)
    var maxDelay: Duration = .seconds(8)

    static func isRetryable(status: Int) -> Bool { status == 429 || status == 529 || (500...599).contains(status) }

    /// The wait before retry number `retry` (0-based), or nil to stop.
    func delay(beforeRetry retry: Int, retryAfter: String?) -> Duration? {
        guard retry < maxRetries else { return nil }
        if let retryAfter, let seconds = Double(retryAfter.trimmingCharacters(in: .whitespaces)), seconds >= 0 {
            // Compared before converting: `1e300` or `inf` from an upstream must end the retries,
            // not trap converting to whole milliseconds.
            guard seconds <= Double(maxDelay.components.seconds) + 1 else { return nil }
            let wait = Duration.milliseconds(Int64(seconds * 1000))
            return wait <= maxDelay ? wait : nil
        }
        let exponential = baseDelay * (1 << min(retry, 16))
        return min(exponential * Double.random(in: 0.8...1.2), maxDelay)
    }
}
