public import Foundation
import Synchronization

/// How long a computed value may be kept.
public enum CacheLifetime: Sendable, Equatable {
    /// Do not keep it (it is handed to the callers waiting now, then forgotten).
    case none
    /// Keep it until this instant.
    case until(Date)
    /// Keep it until removed.
    case forever
}

/// A bounded, expiring cache where concurrent misses for one key run the computation once.
///
/// The gateway caches credentials with it; plugins get one (``PluginCache``) for their own
/// look-ups. Lock-protected rather than an actor: a hit is a dictionary read under a mutex.
public final class SingleFlightCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct Entry {
        var value: Value
        var expiresAt: Date?
    }
    private struct State {
        var entries: [Key: Entry] = [:]
        var inflight: [Key: Task<(Value, CacheLifetime), any Error>] = [:]
    }

    private let state = Mutex(State())
    private let capacity: Int
    private let clock: any GatewayClock

    /// - Parameters:
    ///   - capacity: entries kept at most; beyond it expired entries go first, then arbitrary ones.
    ///   - clock: decides expiry.
    public init(capacity: Int = 100_000, clock: any GatewayClock = SystemClock()) {
        self.capacity = max(1, capacity)
        self.clock = clock
    }

    /// The cached value for `key`, if present and not expired.
    public func value(forKey key: Key) -> Value? {
        let now = clock.now()
        return state.withLock { s in
            guard let e = s.entries[key] else { return nil }
            if let exp = e.expiresAt, exp <= now {
                s.entries[key] = nil
                return nil
            }
            return e.value
        }
    }

    /// The cached value, or the result of `compute` — run once however many callers miss at once.
    ///
    /// If `compute` throws, every waiting caller gets the error and nothing is cached.
    public func value(
        forKey key: Key, compute: @escaping @Sendable () async throws -> (Value, CacheLifetime)
    ) async throws -> Value {
        let now = clock.now()
        let lookup: CacheLookup<Value> = state.withLock { s in
            if let e = s.entries[key] {
                if let exp = e.expiresAt, exp <= now { s.entries[key] = nil } else { return .hit(e.value) }
            }
            if let running = s.inflight[key] { return .wait(running) }
            let t = Task { try await compute() }
            s.inflight[key] = t
            return .wait(t)
        }
        let task: Task<(Value, CacheLifetime), any Error>
        switch lookup {
        case .hit(let value): return value
        case .wait(let t): task = t
        }
        do {
            let (value, lifetime) = try await task.value
            store(key: key, value: value, lifetime: lifetime, task: task)
            return value
        } catch {
            state.withLock { s in
                if s.inflight[key] == task { s.inflight[key] = nil }
            }
            throw error
        }
    }

    private func store(key: Key, value: Value, lifetime: CacheLifetime, task: Task<(Value, CacheLifetime), any Error>) {
        let now = clock.now()
        state.withLock { s in
            guard s.inflight[key] == task else { return }  // another waiter stored it already
            s.inflight[key] = nil
            switch lifetime {
            case .none: return
            case .until(let date) where date <= now: return
            case .until(let date): s.entries[key] = Entry(value: value, expiresAt: date)
            case .forever: s.entries[key] = Entry(value: value, expiresAt: nil)
            }
            if s.entries.count > capacity { Self.evict(&s, now: now, capacity: capacity) }
        }
    }

    private static func evict(_ s: inout State, now: Date, capacity: Int) {
        s.entries = s.entries.filter { $0.value.expiresAt.map { $0 > now } ?? true }
        while s.entries.count > capacity, let victim = s.entries.keys.first {
            s.entries[victim] = nil
        }
    }

    /// Puts a value in directly.
    public func set(_ value: Value, forKey key: Key, lifetime: CacheLifetime) {
        let now = clock.now()
        state.withLock { s in
            switch lifetime {
            case .none: s.entries[key] = nil
            case .until(let date): if date > now { s.entries[key] = Entry(value: value, expiresAt: date) }
            case .forever: s.entries[key] = Entry(value: value, expiresAt: nil)
            }
            if s.entries.count > capacity { Self.evict(&s, now: now, capacity: capacity) }
        }
    }

    /// Forgets `key`.
    public func remove(_ key: Key) {
        state.withLock { _ = $0.entries.removeValue(forKey: key) }
    }

    /// Forgets every key matching `predicate`.
    public func removeAll(where predicate: (Key) -> Bool) {
        state.withLock { s in s.entries = s.entries.filter { !predicate($0.key) } }
    }

    /// Number of live entries (expired ones may still count until touched).
    public var count: Int { state.withLock { $0.entries.count } }
}

/// A per-connection cache a plugin may use for its own look-ups (metadata, keys).
public typealias PluginCache = SingleFlightCache<String, any Sendable>

private enum CacheLookup<Value: Sendable> {
    case hit(Value)
    case wait(Task<(Value, CacheLifetime), any Error>)
}
