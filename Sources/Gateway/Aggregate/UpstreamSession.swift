import Synchronization

/// One upstream MCP session the gateway holds for a caller on one connection: the id the
/// upstream gave (none for a stateless server) and the revision it agreed to.
final class UpstreamSession: Sendable {
    let id: String?
    let protocolVersion: String
    private let lastID = Atomic<Int>(0)

    init(id: String?, protocolVersion: String) {
        self.id = id
        self.protocolVersion = protocolVersion
    }

    /// A JSON-RPC id not used before in this session.
    func nextID() -> Int { lastID.add(1, ordering: .relaxed).newValue }
}

/// The upstream sessions behind one gateway session, by connection name.
final class UpstreamSessionSlot: Sendable {
    private let sessions = Mutex<[String: UpstreamSession]>([:])

    init() {}

    func current(_ connection: String) -> UpstreamSession? { sessions.withLock { $0[connection] } }

    /// Keeps `session` unless another call kept one first (that one wins, and is returned).
    func keep(_ connection: String, _ session: UpstreamSession) -> UpstreamSession {
        sessions.withLock { s in
            if let kept = s[connection] { return kept }
            s[connection] = session
            return session
        }
    }

    /// Drops the kept session if it is still `session` (the upstream forgot it).
    func forget(_ connection: String, if session: UpstreamSession) {
        sessions.withLock { s in if s[connection] === session { s[connection] = nil } }
    }

    /// Removes and returns the kept session (to close it).
    func take(_ connection: String) -> UpstreamSession? { sessions.withLock { $0.removeValue(forKey: connection) } }

    /// Every connection with a kept session.
    var connections: [String] { sessions.withLock { Array($0.keys) } }
}
