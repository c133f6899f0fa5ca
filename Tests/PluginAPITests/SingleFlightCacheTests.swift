import Foundation
import PluginAPI
import Synchronization
import Testing

/// A clock that only moves when told to.
final class ManualClock: GatewayClock {
    private let current: Mutex<Date>

    init(_ start: Date = Date(timeIntervalSince1970: 1_700_000_000)) { current = Mutex(start) }

    func now() -> Date { current.withLock { $0 } }

    func advance(by seconds: TimeInterval) { current.withLock { $0 += seconds } }
}

/// Counts calls from many tasks.
final class CallCounter: Sendable {
    private let count = Mutex(0)

    @discardableResult
    func increment() -> Int { count.withLock { $0 += 1; return $0 } }

    var value: Int { count.withLock { $0 } }
}

private struct ComputeFailed: Error, Equatable {}

@Suite("PluginAPI: SingleFlightCache")
struct SingleFlightCacheTests {
    @Test func concurrentMissesComputeOnce() async throws {
        let cache = SingleFlightCache<String, Int>()
        let calls = CallCounter()
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    try await cache.value(forKey: "k") {
                        calls.increment()
                        try await Task.sleep(for: .milliseconds(50))
                        return (42, .forever)
                    }
                }
            }
            var out: [Int] = []
            for try await v in group { out.append(v) }
            return out
        }
        #expect(results.count == 50)
        #expect(results.allSatisfy { $0 == 42 })
        #expect(calls.value == 1)
        #expect(cache.value(forKey: "k") == 42)
        #expect(cache.count == 1)
    }

    @Test func concurrentMissesForDifferentKeysComputeEach() async throws {
        let cache = SingleFlightCache<Int, Int>()
        let calls = CallCounter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<20 {
                group.addTask {
                    let v = try await cache.value(forKey: i % 4) {
                        calls.increment()
                        try await Task.sleep(for: .milliseconds(50))
                        return ((i % 4) * 10, .forever)
                    }
                    #expect(v == (i % 4) * 10)
                }
            }
            try await group.waitForAll()
        }
        #expect(calls.value == 4)
    }

    @Test func lifetimeNoneIsSharedByWaitersButNotStored() async throws {
        let cache = SingleFlightCache<String, Int>()
        let calls = CallCounter()
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    try await cache.value(forKey: "k") {
                        let n = calls.increment()
                        try await Task.sleep(for: .milliseconds(50))
                        return (n, .none)
                    }
                }
            }
            for try await v in group { #expect(v == 1) }
        }
        #expect(calls.value == 1)
        #expect(cache.value(forKey: "k") == nil)
        #expect(cache.count == 0)
        let again = try await cache.value(forKey: "k") { (calls.increment(), .none) }
        #expect(again == 2)
    }

    @Test func errorsReachEveryWaiterAndAreNotCached() async throws {
        let cache = SingleFlightCache<String, Int>()
        let calls = CallCounter()
        let failures = CallCounter()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<10 {
                group.addTask {
                    do {
                        _ = try await cache.value(forKey: "k") {
                            calls.increment()
                            try await Task.sleep(for: .milliseconds(50))
                            throw ComputeFailed()
                        }
                    } catch is ComputeFailed {
                        failures.increment()
                    } catch {
                        Issue.record("unexpected error \(error)")
                    }
                }
            }
        }
        #expect(calls.value == 1)
        #expect(failures.value == 10)
        #expect(cache.value(forKey: "k") == nil)
        // The next call computes again, and this time it sticks.
        let v = try await cache.value(forKey: "k") {
            calls.increment()
            return (7, .forever)
        }
        #expect(v == 7)
        #expect(calls.value == 2)
        #expect(cache.value(forKey: "k") == 7)
    }

    @Test func untilPastDateIsNotStored() async throws {
        let clock = ManualClock()
        let cache = SingleFlightCache<String, Int>(clock: clock)
        let calls = CallCounter()
        let past = clock.now().addingTimeInterval(-1)
        let first = try await cache.value(forKey: "k") { (calls.increment(), .until(past)) }
        #expect(first == 1)  // the caller still gets it
        #expect(cache.count == 0)
        #expect(cache.value(forKey: "k") == nil)
        let second = try await cache.value(forKey: "k") { (calls.increment(), .until(past)) }
        #expect(second == 2)

        cache.set(99, forKey: "direct", lifetime: .until(past))
        #expect(cache.value(forKey: "direct") == nil)
        #expect(cache.count == 0)
    }

    @Test func expiryFollowsTheClock() async throws {
        let clock = ManualClock()
        let cache = SingleFlightCache<String, Int>(clock: clock)
        let calls = CallCounter()
        let expiry = clock.now().addingTimeInterval(10)
        let compute: @Sendable () async throws -> (Int, CacheLifetime) = { (calls.increment(), .until(expiry)) }

        #expect(try await cache.value(forKey: "k", compute: compute) == 1)
        clock.advance(by: 9.999)
        #expect(try await cache.value(forKey: "k", compute: compute) == 1)
        #expect(cache.value(forKey: "k") == 1)
        #expect(calls.value == 1)
        clock.advance(by: 0.001)  // exactly at expiry: expired
        #expect(cache.value(forKey: "k") == nil)
        #expect(try await cache.value(forKey: "k", compute: compute) == 2)
        #expect(calls.value == 2)
    }

    @Test func foreverDoesNotExpire() async throws {
        let clock = ManualClock()
        let cache = SingleFlightCache<String, String>(clock: clock)
        cache.set("v", forKey: "k", lifetime: .forever)
        clock.advance(by: 10 * 365 * 86400)
        #expect(cache.value(forKey: "k") == "v")
    }

    @Test func capacityIsBounded() async throws {
        let cache = SingleFlightCache<Int, Int>(capacity: 3)
        for i in 0..<10 { cache.set(i, forKey: i, lifetime: .forever) }
        #expect(cache.count == 3)
        for i in 10..<20 { _ = try await cache.value(forKey: i) { (i, .forever) } }
        #expect(cache.count == 3)
    }

    @Test func expiredEntriesAreEvictedFirst() {
        let clock = ManualClock()
        let cache = SingleFlightCache<String, String>(capacity: 2, clock: clock)
        cache.set("a", forKey: "a", lifetime: .until(clock.now().addingTimeInterval(5)))
        cache.set("b", forKey: "b", lifetime: .forever)
        clock.advance(by: 10)
        cache.set("c", forKey: "c", lifetime: .forever)
        #expect(cache.count == 2)
        #expect(cache.value(forKey: "b") == "b")
        #expect(cache.value(forKey: "c") == "c")
        #expect(cache.value(forKey: "a") == nil)
    }

    @Test func removeAndRemoveAll() {
        let cache = SingleFlightCache<String, Int>()
        cache.set(1, forKey: "user:a", lifetime: .forever)
        cache.set(2, forKey: "user:b", lifetime: .forever)
        cache.set(3, forKey: "shared", lifetime: .forever)
        cache.remove("shared")
        #expect(cache.value(forKey: "shared") == nil)
        cache.removeAll { $0.hasPrefix("user:") }
        #expect(cache.count == 0)
        cache.set(4, forKey: "x", lifetime: .forever)
        cache.set(5, forKey: "x", lifetime: .none)
        #expect(cache.value(forKey: "x") == nil)
    }
}
