import Foundation
import OAuthCore

/// The signed-in user as agent0 knows them. `idToken` never leaves this server except toward
/// the gateway (as the bearer of every call) and the IdP (as the logout hint).
struct SignedInUser: Sendable {
    var subject: String
    var name: String
    var email: String?
    var idToken: String
    var expiresAt: Date
}

/// One signed-in browser: an opaque id in its cookie, a CSRF token, the user, the conversation.
final class Session: Sendable {
    let id: String
    let csrfToken: String
    let user: SignedInUser
    let conversation = Conversation()

    init(user: SignedInUser) {
        id = RandomToken.make()
        csrfToken = RandomToken.make()
        self.user = user
    }
}

/// Sessions and sign-ins in progress, in memory (a restart signs everyone out).
actor SessionStore {
    enum Lookup: Sendable {
        case none
        case expired
        case valid(Session)
    }

    private var sessions: [String: Session] = [:]
    /// Sessions that ended because their ID token expired (id → when): their cookie keeps
    /// answering `expired`, not `none`, for a day (the session itself, token and all, is gone).
    private var ended: [String: Date] = [:]
    private var pending: [String: PendingSignIn] = [:]
    private let loginTimeout: Duration
    private let now: @Sendable () -> Date
    /// Unauthenticated `/login` calls create these: a bound keeps them from filling memory.
    static let maxPending = 10_000

    init(loginTimeout: Duration, now: @escaping @Sendable () -> Date = { Date() }) {
        self.loginTimeout = loginTimeout
        self.now = now
    }

    /// Keeps a sign-in in progress under a new id (the login cookie's value).
    func addPending(_ sign: PendingSignIn) -> String {
        let cutoff = ContinuousClock.now - loginTimeout
        pending = pending.filter { $0.value.createdAt > cutoff }
        if pending.count >= Self.maxPending, let oldest = pending.min(by: { $0.value.createdAt < $1.value.createdAt }) {
            pending.removeValue(forKey: oldest.key)
        }
        let id = RandomToken.make()
        pending[id] = sign
        return id
    }

    /// The sign-in in progress, once: a second callback with the same cookie finds nothing.
    func takePending(_ id: String) -> PendingSignIn? {
        guard let sign = pending.removeValue(forKey: id), sign.createdAt > ContinuousClock.now - loginTimeout else { return nil }
        return sign
    }

    func create(_ user: SignedInUser) -> Session {
        let cutoff = now()
        for (id, s) in sessions where s.user.expiresAt <= cutoff { ended[id] = s.user.expiresAt }
        sessions = sessions.filter { $0.value.user.expiresAt > cutoff }
        ended = ended.filter { $0.value > cutoff.addingTimeInterval(-86_400) }
        let session = Session(user: user)
        sessions[session.id] = session
        return session
    }

    func lookup(_ id: String?) -> Lookup {
        guard let id else { return .none }
        if ended[id] != nil { return .expired }
        guard let session = sessions[id] else { return .none }
        guard session.user.expiresAt > now() else {
            sessions.removeValue(forKey: id)
            ended[id] = session.user.expiresAt
            return .expired
        }
        return .valid(session)
    }

    @discardableResult
    func remove(_ id: String?) -> Session? {
        guard let id else { return nil }
        ended.removeValue(forKey: id)
        return sessions.removeValue(forKey: id)
    }
}
