package import Foundation
import Synchronization

/// Streamable-HTTP sessions (2025-06-18 / 2025-11-25): each bound to the user who
/// initialised it and to the negotiated protocol version. Idle sessions expire.
package final class MCPSessions: Sendable {
    struct Session: Sendable {
        var owner: String
        var protocolVersion: String
        var lastSeen: Date
    }

    private let sessions = Mutex<[String: Session]>([:])
    let idleTimeout: TimeInterval
    let capacity: Int

    package init(idleTimeout: TimeInterval = 3600, capacity: Int = 10_000) {
        self.idleTimeout = idleTimeout
        self.capacity = capacity
    }

    func create(owner: String, protocolVersion: String) -> String {
        let id = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let now = Date()
        sessions.withLock { s in
            if s.count >= capacity {
                s = s.filter { now.timeIntervalSince($0.value.lastSeen) < idleTimeout }
                if s.count >= capacity, let oldest = s.min(by: { $0.value.lastSeen < $1.value.lastSeen })?.key { s[oldest] = nil }
            }
            s[id] = Session(owner: owner, protocolVersion: protocolVersion, lastSeen: now)
        }
        return id
    }

    /// The live session `id` of `owner`; nil when unknown, expired or another user's.
    func touch(_ id: String, owner: String) -> Session? {
        let now = Date()
        return sessions.withLock { s in
            guard var session = s[id] else { return nil }
            if now.timeIntervalSince(session.lastSeen) > idleTimeout {
                s[id] = nil
                return nil
            }
            guard session.owner == owner else { return nil }
            session.lastSeen = now
            s[id] = session
            return session
        }
    }

    func exists(_ id: String) -> Bool { sessions.withLock { $0[id] != nil } }

    @discardableResult
    func end(_ id: String, owner: String) -> Bool {
        sessions.withLock { s in
            guard s[id]?.owner == owner else { return false }
            s[id] = nil
            return true
        }
    }
}
