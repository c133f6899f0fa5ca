import Logging
import PostgresNIO

/// The shared state's schema, versioned. Every replica runs this at start; a session-level
/// advisory lock makes replicas that start at once take turns, and each step is applied once
/// (recorded in `switchboard_schema`), inside a transaction with its record.
enum Migrations {
    /// An arbitrary constant: the advisory lock all replicas agree on.
    static let lock: Int64 = 0x5357_4244_5354_4154  // "SWBDSTAT"

    /// Version → its statements. Append; never edit a released step.
    static let steps: [(version: Int, statements: [String])] = [
        (1, [
            """
            CREATE TABLE switchboard_credential (
                key bytea PRIMARY KEY,
                key_id text NOT NULL,
                sealed bytea NOT NULL,
                expires_at timestamptz NOT NULL
            )
            """,
            "CREATE INDEX switchboard_credential_expires ON switchboard_credential (expires_at)",
            """
            CREATE TABLE switchboard_lease (
                key bytea PRIMARY KEY,
                holder text NOT NULL,
                expires_at timestamptz NOT NULL
            )
            """,
        ]),
        // Rate limits shared by the replicas: one GCRA bucket per key, its theoretical arrival
        // time in microseconds of the database's clock.
        (2, [
            "CREATE TABLE switchboard_rate (key bytea PRIMARY KEY, tat bigint NOT NULL)",
        ]),
        // What each replica saw, for every replica's status: connections' activity per replica,
        // and users' views (the user as a hash; no token is ever in a view).
        (3, [
            """
            CREATE TABLE switchboard_replica_activity (
                replica text NOT NULL,
                connection text NOT NULL,
                activity text NOT NULL,
                updated timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (replica, connection)
            )
            """,
            """
            CREATE TABLE switchboard_user_view (
                key bytea PRIMARY KEY,
                user_key bytea NOT NULL,
                connection text NOT NULL,
                view text NOT NULL,
                at timestamptz NOT NULL
            )
            """,
            "CREATE INDEX switchboard_user_view_user ON switchboard_user_view (user_key)",
        ]),
        // The scope sets users' calls were widened to by a step-up (the user as a hash).
        (4, [
            "CREATE TABLE switchboard_scopes (key bytea PRIMARY KEY, scopes text NOT NULL, updated timestamptz NOT NULL DEFAULT now())",
        ]),
    ]

    /// Applies what is missing; returns the schema version now in place.
    static func run(on client: PostgresClient, logger: Logger) async throws -> Int {
        try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(lock))", logger: logger)
            do {
                let version = try await apply(connection, logger: logger)
                try await connection.query("SELECT pg_advisory_unlock(\(lock))", logger: logger)
                return version
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(lock))", logger: logger)
                throw error
            }
        }
    }

    private static func apply(_ connection: PostgresConnection, logger: Logger) async throws -> Int {
        try await connection.query(
            "CREATE TABLE IF NOT EXISTS switchboard_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())", logger: logger)
        var current = 0
        for try await version in try await connection.query("SELECT coalesce(max(version), 0)::integer FROM switchboard_schema", logger: logger).decode(Int.self) {
            current = version
        }
        for step in steps where step.version > current {
            try await connection.query("BEGIN", logger: logger)
            for sql in step.statements { try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger) }
            try await connection.query("INSERT INTO switchboard_schema (version) VALUES (\(step.version))", logger: logger)
            try await connection.query("COMMIT", logger: logger)
            logger.info("shared state schema migrated", metadata: ["version": "\(step.version)"])
            current = step.version
        }
        return current
    }
}
