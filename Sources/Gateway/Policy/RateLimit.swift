import Foundation
import Synchronization

/// One of a connection's `rate_limits:`: at most `burst` calls at once, refilled at one per
/// `interval / requests`, per key (the connection, and the user and/or the tool when asked).
/// For an MCP connection only `tools/call` counts (a session's initialize and lists do not);
/// for a REST connection every request does.
struct RateLimit: Sendable {
    var name: String
    var requests: Int
    var interval: Duration
    var burst: Int
    /// Separate buckets per user (default) and per tool.
    var perUser = true
    var perTool = false
    /// Only calls of these tools count (MCP); any when nil.
    var tool: Glob?

    /// Nanoseconds between two calls at the sustained rate (GCRA's emission interval).
    var emissionNanoseconds: Int64 {
        max(1, (interval.components.seconds * 1_000_000_000 + interval.components.attoseconds / 1_000_000_000) / Int64(requests))
    }

    /// "10 per minute" and the like, for people and models.
    var words: String {
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        let per: String
        switch seconds {
        case 1: per = "second"
        case 60: per = "minute"
        case 3600: per = "hour"
        case 86400: per = "day"
        default: per = "\(seconds.formatted()) seconds"
        }
        return "\(requests) per \(per)"
    }
}

/// The buckets of one connection's limits (GCRA: one stored instant per key, the theoretical
/// arrival time). In process; with the shared-state store of the scale-out issue it becomes global.
final class RateLimiter: Sendable {
    struct Refusal: Error, Sendable, Equatable {
        var limit: String
        var retryAfter: Double
        var words: String
    }

    struct Admitted: Sendable, Equatable {
        var limit: Int
        var remaining: Int
        /// Seconds until the bucket is full again.
        var reset: Double
    }

    /// A bucket: the limit, and the user and the tool when the limit counts them apart. (A struct,
    /// not the three joined in a string: no allocation per call.)
    struct Key: Hashable, Sendable {
        var limit: String
        var user: String?
        var tool: String?
    }

    /// Theoretical arrival times in whole nanoseconds: the arithmetic is exact. (In seconds as
    /// Double, `(now + t) - burst·t` with a burst of 1 could round one ulp above `now`, and a
    /// fresh bucket refused its first call "for 1 second".)
    private let tats = Mutex<[Key: Int64]>([:])
    /// Keys idle longer than the longest interval are dropped when the table grows past this.
    private let capacity: Int

    init(capacity: Int = 100_000) { self.capacity = capacity }

    /// Buckets held now (tests: what a full table forgets).
    var bucketCount: Int { tats.withLock { $0.count } }

    /// GCRA for one bucket: `tat` is its theoretical arrival time, moved on when the call is admitted.
    private static func step(_ tat: inout Int64, now: Int64, emission t: Int64, tau: Int64, limit: RateLimit) -> Result<Admitted, Refusal> {
        let next = max(tat, now) + t
        let allowAt = next - tau
        if now < allowAt {
            return .failure(Refusal(limit: limit.name, retryAfter: Double(allowAt - now) / 1e9, words: limit.words))
        }
        tat = next
        return .success(Admitted(limit: limit.burst, remaining: Int((now - allowAt) / t), reset: Double(next - now) / 1e9))
    }

    /// Takes one call for `key` under `limit` at `now` (seconds, monotonic).
    func take(_ limit: RateLimit, key: Key, now seconds: Double) -> Result<Admitted, Refusal> {
        let now = Int64((seconds * 1e9).rounded())
        let t = limit.emissionNanoseconds
        let tau = Int64(limit.burst) * t
        return tats.withLock { table in
            if table.count >= capacity, table[key] == nil { table = table.filter { $0.value > now } }
            // One hash of the key per call: the bucket is read and written in place.
            return Self.step(&table[key, default: now], now: now, emission: t, tau: tau, limit: limit)
        }
    }
}
