public import Foundation
public import Gateway
public import Logging
import NIOCore
public import PluginAPI
import PostgresNIO
import ServiceLifecycle

/// The replicas' shared state in PostgreSQL (`gateway.state: postgres://…`): credentials sealed
/// with AES-GCM (``CredentialSeal``) and one lease row per credential being exchanged. Leases and
/// expiry are judged by the database's clock, so replicas whose clocks drift still agree.
///
/// Every call is bounded (``answerWithin``): a database that does not answer makes the call that
/// needed it fail fast (the gateway answers 503 `state_unavailable`), never hang.
public final class PostgresStateStore: SharedStateStore {
    /// What the CLI passes the gateway (`GatewayOptions.sharedState`).
    public static let factory: SharedStateFactory = { settings, logger in try await PostgresStateStore.connect(settings, logger: logger) }

    static let answerWithin: Duration = .seconds(2)
    static let sweepEvery: Duration = .seconds(300)

    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let seal: CredentialSeal
    private let logger: Logger
    /// This process, as a lease holder.
    private let holder = UUID().uuidString

    private init(client: PostgresClient, runner: Task<Void, Never>, seal: CredentialSeal, logger: Logger) {
        self.client = client
        self.runner = runner
        self.seal = seal
        self.logger = logger
    }

    /// Connects, migrates the schema (waiting up to `startWithin` for the database), and returns
    /// the store; throws when the database cannot be reached or the settings are unusable.
    public static func connect(_ settings: SharedStateSettings, logger: Logger, startWithin: Duration = .seconds(30)) async throws -> PostgresStateStore {
        let seal = try CredentialSeal(secrets: settings.keys)
        let configuration = try Self.configuration(settings)
        var background = logger
        background[metadataKey: "component"] = "postgres-state"
        let client = PostgresClient(configuration: configuration, backgroundLogger: background)
        let runner = Task { await client.run() }
        let store = PostgresStateStore(client: client, runner: runner, seal: seal, logger: background)
        let deadline = ContinuousClock.now + startWithin
        while true {
            do {
                let version = try await Migrations.run(on: client, logger: background)
                background.info("shared state ready", metadata: [
                    "database": "\(configuration.host ?? "?"):\(configuration.port ?? 0)/\(configuration.database ?? "")", "schema": "\(version)"])
                return store
            } catch {
                guard ContinuousClock.now < deadline else {
                    runner.cancel()
                    throw StateStoreError("gateway.state: the database could not be reached or migrated within \(startWithin): \(String(reflecting: error))")
                }
                background.warning("shared state: waiting for the database", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// `postgres://user[:password]@host[:port]/database[?sslmode=disable|prefer|require]`.
    static func configuration(_ settings: SharedStateSettings) throws -> PostgresClient.Configuration {
        guard let url = URLComponents(string: settings.url), ["postgres", "postgresql"].contains(url.scheme ?? ""),
              let host = url.host, !host.isEmpty
        else { throw StateStoreError("gateway.state: '\(settings.url.split(separator: "@").last ?? "")' is not a postgres:// URL") }
        guard let user = url.percentEncodedUser?.removingPercentEncoding, !user.isEmpty else {
            throw StateStoreError("gateway.state: the URL names no user (postgres://user@host/database)")
        }
        let password = settings.password?.reveal() ?? url.percentEncodedPassword?.removingPercentEncoding
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        let tls: PostgresClient.Configuration.TLS
        switch url.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "prefer" {
        case "disable": tls = .disable
        case "require", "verify-full": tls = .require(.makeClientConfiguration())
        case "prefer": tls = .prefer(.makeClientConfiguration())
        case let other: throw StateStoreError("gateway.state: sslmode '\(other)' is not one of disable, prefer, require")
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: url.port ?? 5432, username: user, password: password, database: database.isEmpty ? nil : database, tls: tls)
        configuration.options.connectTimeout = .seconds(2)
        configuration.options.maximumConnections = 20
        return configuration
    }

    // MARK: SharedStateStore

    public func credential(for key: SharedCredentialKey) async throws -> Credential? {
        let row = CredentialSeal.rowKey(key)
        let found: (String, Data)? = try await bounded { [client] in
            let rows = try await client.query("SELECT key_id, sealed FROM switchboard_credential WHERE key = \(row) AND expires_at > now()")
            for try await (keyID, sealed) in rows.decode((String, Data).self) { return (keyID, sealed) }
            return nil
        }
        guard let (keyID, sealed) = found else { return nil }
        guard let credential = seal.open(sealed, keyID: keyID, rowKey: row) else {
            logger.warning("shared state: a stored credential does not open with the keys listed", metadata: ["key_id": "\(keyID)", "credential": "\(key)"])
            return nil
        }
        return credential
    }

    public func store(_ credential: Credential, for key: SharedCredentialKey, until: Date) async throws {
        let row = CredentialSeal.rowKey(key)
        let (keyID, sealed) = try seal.seal(credential, rowKey: row)
        try await bounded { [client] in
            try await client.query("""
                INSERT INTO switchboard_credential (key, key_id, sealed, expires_at) VALUES (\(row), \(keyID), \(sealed), \(until))
                ON CONFLICT (key) DO UPDATE SET key_id = EXCLUDED.key_id, sealed = EXCLUDED.sealed, expires_at = EXCLUDED.expires_at
                """)
        }
    }

    public func forget(_ key: SharedCredentialKey) async throws {
        let row = CredentialSeal.rowKey(key)
        try await bounded { [client] in try await client.query("DELETE FROM switchboard_credential WHERE key = \(row)") }
    }

    public func acquireLease(_ key: SharedCredentialKey, for duration: Duration) async throws -> Bool {
        let row = CredentialSeal.rowKey(key)
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return try await bounded { [client, holder] in
            // Inserted, or taken over from a holder whose lease ran out: a row comes back. Held
            // by another replica: none.
            let rows = try await client.query("""
                INSERT INTO switchboard_lease (key, holder, expires_at) VALUES (\(row), \(holder), now() + make_interval(secs => \(seconds)))
                ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                WHERE switchboard_lease.expires_at < now()
                RETURNING holder
                """)
            for try await _ in rows { return true }
            return false
        }
    }

    public func releaseLease(_ key: SharedCredentialKey) async {
        let row = CredentialSeal.rowKey(key)
        _ = try? await bounded { [client, holder] in try await client.query("DELETE FROM switchboard_lease WHERE key = \(row) AND holder = \(holder)") }
    }

    public func rememberScopes(_ scopes: Set<String>, connection: String, user: String) async throws {
        let row = CredentialSeal.rowKey(connection, user, "widened")
        let text = scopes.sorted().joined(separator: " ")
        try await bounded { [client] in
            try await client.query("""
                INSERT INTO switchboard_scopes (key, scopes, updated) VALUES (\(row), \(text), now())
                ON CONFLICT (key) DO UPDATE SET scopes = EXCLUDED.scopes, updated = now()
                """)
        }
    }

    public func widenedScopes(connection: String, user: String) async throws -> Set<String>? {
        let row = CredentialSeal.rowKey(connection, user, "widened")
        return try await bounded { [client] in
            let rows = try await client.query("SELECT scopes FROM switchboard_scopes WHERE key = \(row)")
            for try await text in rows.decode(String.self) { return Set(text.split(separator: " ").map(String.init)) }
            return nil
        }
    }

    public func publish(replica: String, connections: [String: Data], users: [SharedUserView]) async throws {
        try await bounded { [client] in
            for (connection, activity) in connections {
                let text = String(decoding: activity, as: UTF8.self)
                try await client.query("""
                    INSERT INTO switchboard_replica_activity (replica, connection, activity, updated) VALUES (\(replica), \(connection), \(text), now())
                    ON CONFLICT (replica, connection) DO UPDATE SET activity = EXCLUDED.activity, updated = now()
                    """)
            }
            for u in users {
                let key = CredentialSeal.rowKey(u.connection, u.user, "view")
                let userKey = CredentialSeal.rowKey("", u.user, "view")
                let text = String(decoding: u.view, as: UTF8.self)
                try await client.query("""
                    INSERT INTO switchboard_user_view (key, user_key, connection, view, at) VALUES (\(key), \(userKey), \(u.connection), \(text), \(u.at))
                    ON CONFLICT (key) DO UPDATE SET view = EXCLUDED.view, at = EXCLUDED.at WHERE switchboard_user_view.at < EXCLUDED.at
                    """)
            }
        }
    }

    public func peerActivity(excluding replica: String, within: Duration) async throws -> [String: [Data]] {
        let seconds = Double(within.components.seconds)
        return try await bounded { [client] in
            var out: [String: [Data]] = [:]
            let rows = try await client.query("""
                SELECT connection, activity FROM switchboard_replica_activity
                WHERE replica <> \(replica) AND updated > now() - make_interval(secs => \(seconds))
                """)
            for try await (connection, activity) in rows.decode((String, String).self) { out[connection, default: []].append(Data(activity.utf8)) }
            return out
        }
    }

    public func userViews(_ user: String) async throws -> [String: Data] {
        let userKey = CredentialSeal.rowKey("", user, "view")
        return try await bounded { [client] in
            var out: [String: Data] = [:]
            let rows = try await client.query("SELECT connection, view FROM switchboard_user_view WHERE user_key = \(userKey)")
            for try await (connection, view) in rows.decode((String, String).self) { out[connection] = Data(view.utf8) }
            return out
        }
    }

    public func takeRate(_ key: String, emission: Duration, burst: Int) async throws -> SharedRateDecision {
        let row = CredentialSeal.rowKey("rate", key, "")
        let e = max(1, emission.components.seconds * 1_000_000 + emission.components.attoseconds / 1_000_000_000_000)
        let tau = Int64(burst) * e
        return try await bounded { [client] in
            // GCRA in one statement: the bucket's next arrival time moves on by one emission
            // interval when the call fits (a row comes back: how far ahead it now is), else
            // nothing changes (no row).
            let admitted = try await client.query("""
                WITH clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now)
                INSERT INTO switchboard_rate AS r (key, tat) SELECT \(row), clock.now + \(e) FROM clock
                ON CONFLICT (key) DO UPDATE SET tat = greatest(r.tat, (SELECT now FROM clock)) + \(e)
                WHERE greatest(r.tat, (SELECT now FROM clock)) + \(e) - \(tau) <= (SELECT now FROM clock)
                RETURNING r.tat - (SELECT now FROM clock)
                """)
            for try await ahead in admitted.decode(Int64.self) {
                return .admitted(remaining: Int(max(0, tau - ahead) / e), reset: Double(ahead) / 1e6)
            }
            let waiting = try await client.query("""
                SELECT greatest(tat, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) + \(e) - \(tau)
                    - (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
                FROM switchboard_rate WHERE key = \(row)
                """)
            for try await wait in waiting.decode(Int64.self) { return .refused(retryAfter: Double(max(1, wait)) / 1e6) }
            return .refused(retryAfter: Double(e) / 1e6)
        }
    }

    public func isReachable() async -> Bool {
        (try? await bounded { [client] in try await client.query("SELECT 1") }) != nil
    }

    public func sealToken(_ payload: Data, purpose: String) throws -> String {
        try seal.sealToken(payload, purpose: purpose)
    }

    public func openToken(_ token: String, purpose: String) -> Data? {
        seal.openToken(token, purpose: purpose)
    }

    // MARK: Service

    /// Sweeps expired rows now and then until the gateway stops, then closes the connections.
    public func run() async throws {
        try? await cancelWhenGracefulShutdown { [self] in
            while true {
                try await Task.sleep(for: Self.sweepEvery)
                _ = try? await bounded { [client] in
                    try await client.query("DELETE FROM switchboard_credential WHERE expires_at < now() - interval '1 hour'")
                    try await client.query("DELETE FROM switchboard_lease WHERE expires_at < now() - interval '1 hour'")
                    try await client.query("DELETE FROM switchboard_replica_activity WHERE updated < now() - interval '1 day'")
                    try await client.query("DELETE FROM switchboard_user_view WHERE at < now() - interval '30 days'")
                    // A bucket whose arrival time is a day past is full again: the row says nothing.
                    try await client.query("DELETE FROM switchboard_rate WHERE tat < (extract(epoch FROM now()) * 1000000)::bigint - 86400000000")
                }
            }
        }
        runner.cancel()
    }

    /// Runs `body`, or throws after ``answerWithin``.
    @discardableResult
    private func bounded<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: Self.answerWithin)
                throw StateStoreError("the database did not answer within \(Self.answerWithin)")
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw StateStoreError("no answer") }
            return first
        }
    }
}
