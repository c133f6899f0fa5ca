import Foundation
import PluginAPI
import Synchronization
import SwitchboardJSON

/// The `/mcp` endpoint's own Streamable-HTTP sessions: each bound to the user who opened it,
/// the revision agreed, the virtual server it was opened on (if any), the upstream sessions
/// behind it, and the open `GET` streams its notifications go to. Idle sessions expire (their
/// upstream sessions are closed when the endpoint next opens a session).
///
/// With replicas (`gateway.state`) a session's id is a token the store sealed, naming its owner,
/// revision, virtual server and start: a replica that does not know the id opens it and takes the
/// session up (its upstream sessions are opened again there, as after an upstream's restart), so
/// a load balancer need not be sticky. Such a session ends ``sealedLifetime`` after it started at
/// the latest; ending it on one replica does not end it on the others.
final class AggregateSessions: Sendable {
    final class Session: Sendable {
        let id: String
        let owner: String
        let protocolVersion: String
        let virtualServer: String?
        let upstream = UpstreamSessionSlot()
        private let state: Mutex<(lastSeen: Date, caller: CallerIdentity, streams: [UUID: AsyncStream<JSONValue>.Continuation])>

        init(id: String, caller: CallerIdentity, protocolVersion: String, virtualServer: String?) {
            self.id = id
            self.owner = caller.userKey
            self.protocolVersion = protocolVersion
            self.virtualServer = virtualServer
            self.state = Mutex((Date(), caller, [:]))
        }

        var lastSeen: Date { state.withLock { $0.lastSeen } }
        /// The caller as last verified (to close the upstream sessions of an expired session).
        var caller: CallerIdentity { state.withLock { $0.caller } }
        func touch(_ caller: CallerIdentity) { state.withLock { $0.lastSeen = Date(); $0.caller = caller } }

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
    /// Seals and opens session ids when replicas share state; nil in a single process.
    let shared: (any SharedStateStore)?
    static let sealedLifetime: TimeInterval = 24 * 3600
    static let sealPurpose = "mcp-session"

    /// What a sealed session id carries.
    private struct Sealed: Codable {
        var owner: String
        var version: String
        var virtualServer: String?
        var started: Double
        var nonce: String
    }

    init(idleTimeout: TimeInterval = 3600, capacity: Int = 10_000, shared: (any SharedStateStore)? = nil) {
        self.idleTimeout = idleTimeout
        self.capacity = capacity
        self.shared = shared
    }

    /// A new session; when full, the sessions idle longest make room (returned, to be closed).
    func open(caller: CallerIdentity, protocolVersion: String, virtualServer: String?) -> (Session, evicted: [Session]) {
        let nonce = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        var id = nonce
        if let shared, let payload = try? JSONEncoder().encode(Sealed(
            owner: caller.userKey, version: protocolVersion, virtualServer: virtualServer, started: Date().timeIntervalSince1970, nonce: nonce)),
            let token = try? shared.sealToken(payload, purpose: Self.sealPurpose) {
            id = token
        }
        let session = Session(id: id, caller: caller, protocolVersion: protocolVersion, virtualServer: virtualServer)
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
    func implicit(caller: CallerIdentity, protocolVersion: String, virtualServer: String?) -> Session {
        let id = "stateless:" + (virtualServer ?? "") + ":" + caller.userKey
        return sessions.withLock { s in
            if let session = s[id] {
                session.touch(caller)
                return session
            }
            let session = Session(id: id, caller: caller, protocolVersion: protocolVersion, virtualServer: virtualServer)
            s[id] = session
            return session
        }
    }

    /// The live session `id` of `owner` on `virtualServer`; nil when unknown, expired or another's.
    /// An id another replica sealed is taken up here.
    func find(_ id: String, caller: CallerIdentity, virtualServer: String?) -> Session? {
        let known: Session?? = sessions.withLock { s in
            guard let session = s[id] else { return .none }
            guard session.owner == caller.userKey, session.virtualServer == virtualServer,
                  Date().timeIntervalSince(session.lastSeen) <= idleTimeout
            else { return .some(nil) }
            session.touch(caller)
            return .some(session)
        }
        if let known { return known }
        guard let shared, let payload = shared.openToken(id, purpose: Self.sealPurpose),
              let sealed = try? JSONDecoder().decode(Sealed.self, from: payload),
              sealed.owner == caller.userKey, sealed.virtualServer == virtualServer,
              Date().timeIntervalSince1970 - sealed.started <= Self.sealedLifetime
        else { return nil }
        let session = Session(id: id, caller: caller, protocolVersion: sealed.version, virtualServer: virtualServer)
        return sessions.withLock { s in
            if let raced = s[id] { return raced }
            s[id] = session
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
