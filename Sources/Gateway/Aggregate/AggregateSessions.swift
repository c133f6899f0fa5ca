import Foundation
import Synchronization
import SwitchboardJSON

/// The `/mcp` endpoint's own Streamable-HTTP sessions: each bound to the user who opened it,
/// the revision agreed, the virtual server it was opened on (if any), the upstream sessions
/// behind it, and the open `GET` streams its notifications go to. Idle sessions expire (their
/// upstream sessions are closed by the endpoint's sweep).
final class AggregateSessions: Sendable {
    final class Session: Sendable {
        let id: String
        let owner: String
        let protocolVersion: String
        let virtualServer: String?
        let upstream = UpstreamSessionSlot()
        private let state = Mutex<(lastSeen: Date, streams: [UUID: AsyncStream<JSONValue>.Continuation])>((Date(), [:]))

        init(id: String, owner: String, protocolVersion: String, virtualServer: String?) {
            self.id = id
            self.owner = owner
            self.protocolVersion = protocolVersion
            self.virtualServer = virtualServer
        }

        var lastSeen: Date { state.withLock { $0.lastSeen } }
        func touch() { state.withLock { $0.lastSeen = Date() } }

        /// A stream of the notifications sent to this session from now on (a `GET` stream).
        func listen() -> AsyncStream<JSONValue> {
            let (stream, continuation) = AsyncStream.makeStream(of: JSONValue.self, bufferingPolicy: .bufferingNewest(64))
            let key = UUID()
            state.withLock { $0.streams[key] = continuation }
            continuation.onTermination = { [weak self] _ in self?.state.withLock { _ = $0.streams.removeValue(forKey: key) } }
            return stream
        }

        /// Sends `notification` to every open stream; false when none is open.
        @discardableResult
        func notify(_ notification: JSONValue) -> Bool {
            let streams = state.withLock { Array($0.streams.values) }
            for stream in streams { stream.yield(notification) }
            return !streams.isEmpty
        }

        /// Ends the open streams.
        func finish() {
            let streams = state.withLock { s in defer { s.streams = [:] }; return Array(s.streams.values) }
            for stream in streams { stream.finish() }
        }
    }

    private let sessions = Mutex<[String: Session]>([:])
    let idleTimeout: TimeInterval
    let capacity: Int

    init(idleTimeout: TimeInterval = 3600, capacity: Int = 10_000) {
        self.idleTimeout = idleTimeout
        self.capacity = capacity
    }

    /// A new session; when full, the sessions idle longest make room (returned, to be closed).
    func open(owner: String, protocolVersion: String, virtualServer: String?) -> (Session, evicted: [Session]) {
        let id = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let session = Session(id: id, owner: owner, protocolVersion: protocolVersion, virtualServer: virtualServer)
        let evicted = sessions.withLock { s -> [Session] in
            var out: [Session] = []
            if s.count >= capacity, let oldest = s.values.min(by: { $0.lastSeen < $1.lastSeen }) {
                out.append(oldest)
                s[oldest.id] = nil
            }
            s[id] = session
            return out
        }
        return (session, evicted)
    }

    /// The session behind a stateless (2026-07-28) client's requests: one per user and
    /// endpoint, so the upstream sessions are kept between its requests all the same.
    func implicit(owner: String, protocolVersion: String, virtualServer: String?) -> Session {
        let id = "stateless:" + (virtualServer ?? "") + ":" + owner
        return sessions.withLock { s in
            if let session = s[id] {
                session.touch()
                return session
            }
            let session = Session(id: id, owner: owner, protocolVersion: protocolVersion, virtualServer: virtualServer)
            s[id] = session
            return session
        }
    }

    /// The live session `id` of `owner` on `virtualServer`; nil when unknown, expired or another's.
    func find(_ id: String, owner: String, virtualServer: String?) -> Session? {
        sessions.withLock { s in
            guard let session = s[id], session.owner == owner, session.virtualServer == virtualServer,
                  Date().timeIntervalSince(session.lastSeen) <= idleTimeout
            else { return nil }
            session.touch()
            return session
        }
    }

    /// Removes the session (the client ended it).
    func end(_ session: Session) { sessions.withLock { _ = $0.removeValue(forKey: session.id) } }

    /// Removes and returns the sessions idle past the timeout.
    func expired() -> [Session] {
        let now = Date()
        return sessions.withLock { s in
            let gone = s.values.filter { now.timeIntervalSince($0.lastSeen) > idleTimeout }
            for session in gone { s[session.id] = nil }
            return gone
        }
    }

    /// Every live session.
    var all: [Session] { sessions.withLock { Array($0.values) } }
}
