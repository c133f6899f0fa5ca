public import Foundation
public import Logging
public import PluginAPI
public import ServiceLifecycle

/// State several gateway replicas share (`gateway.state:` in connections.yaml): the credentials
/// plugins issued, and a lease per credential so that one replica at a time runs its exchange.
/// Without `gateway.state` there is none and everything stays in the process, as before.
///
/// The gateway names no database: the process passes a ``SharedStateFactory`` (the CLI's is
/// `PostgresState`), as it passes the plugins. The store is a `Service`: it runs, and stops, with
/// the gateway.
public protocol SharedStateStore: Service {
    /// The credential stored for `key` that has not expired; nil when there is none (or it cannot
    /// be opened with the keys at hand). Throws when the store cannot be reached.
    func credential(for key: SharedCredentialKey) async throws -> Credential?
    /// Keeps `credential` for every replica until `until`.
    func store(_ credential: Credential, for key: SharedCredentialKey, until: Date) async throws
    /// Drops the credential of `key` (a step-up or a refused token: no replica may use it again).
    func forget(_ key: SharedCredentialKey) async throws
    /// Takes `key`'s lease for `duration` unless another replica holds one that has not run out.
    /// True: this replica runs the exchange and stores its result.
    func acquireLease(_ key: SharedCredentialKey, for duration: Duration) async throws -> Bool
    /// Gives the lease back (best effort: it runs out anyway).
    func releaseLease(_ key: SharedCredentialKey) async
    /// Whether the store answers now (`/readyz`).
    func isReachable() async -> Bool
    /// Keeps the scope set a user's calls on `connection` were widened to (after a step-up).
    func rememberScopes(_ scopes: Set<String>, connection: String, user: String) async throws
    /// The widened scope set another replica kept for the user, if any.
    func widenedScopes(connection: String, user: String) async throws -> Set<String>?
    /// Publishes this replica's view of the connections (each its activity, encoded by the
    /// gateway) and the users' views that changed.
    func publish(replica: String, connections: [String: Data], users: [SharedUserView]) async throws
    /// What the other replicas published within `within`: connection → their activities.
    func peerActivity(excluding replica: String, within: Duration) async throws -> [String: [Data]]
    /// One user's newest view of each connection, whichever replica published it.
    func userViews(_ user: String) async throws -> [String: Data]
    /// Takes one call from the GCRA bucket `key` (one call per `emission`, `burst` at once),
    /// judged by the store's clock, so every replica counts against the same bucket.
    func takeRate(_ key: String, emission: Duration, burst: Int) async throws -> SharedRateDecision
    /// `payload` sealed (encrypted and authenticated, for `purpose` only) into a token of
    /// visible ASCII any replica can open: what a replica hands out that another must trust
    /// (an `/mcp` session id).
    func sealToken(_ payload: Data, purpose: String) throws -> String
    /// The payload of a token ``sealToken(_:purpose:)`` made for `purpose`; nil for anything else.
    func openToken(_ token: String, purpose: String) -> Data?
}

/// Which credential: the connection, the user (empty for a shared credential) and the scope set.
public struct SharedCredentialKey: Hashable, Sendable, CustomStringConvertible {
    public var connection: String
    public var user: String
    public var scopes: String

    public init(connection: String, user: String, scopes: String) {
        self.connection = connection
        self.user = user
        self.scopes = scopes
    }

    public var description: String { "\(connection)/\(user.isEmpty ? "(shared)" : "(user)")/\(scopes)" }
}

/// A user's view of a connection as one replica saw it (encoded by the gateway).
public struct SharedUserView: Sendable {
    public var connection: String
    public var user: String
    public var view: Data
    public var at: Date

    public init(connection: String, user: String, view: Data, at: Date) {
        self.connection = connection
        self.user = user
        self.view = view
        self.at = at
    }
}

/// A shared bucket's answer: admitted (calls left, seconds until full) or refused (seconds to wait).
public enum SharedRateDecision: Sendable, Equatable {
    case admitted(remaining: Int, reset: Double)
    case refused(retryAfter: Double)
}

/// `gateway.state`, `gateway.state_password` and `gateway.state_key`, as read at start.
public struct SharedStateSettings: Sendable, Equatable {
    /// `postgres://user@host:port/database` (`${VAR}`s already replaced).
    public var url: String
    /// The password, when not in the URL.
    public var password: Secret?
    /// Keys that seal credentials at rest: the first seals, every one opens (rotation).
    public var keys: [Secret]

    public init(url: String, password: Secret?, keys: [Secret]) {
        self.url = url
        self.password = password
        self.keys = keys
    }
}

/// Makes the store `gateway.state` names: connects, runs the schema migrations, and returns it.
public typealias SharedStateFactory = @Sendable (SharedStateSettings, Logger) async throws -> any SharedStateStore
