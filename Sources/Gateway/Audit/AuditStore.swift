import Foundation
import GRDB

/// The audit trail's SQLite file (WAL): one table, written in batches by ``AuditLog``, read by
/// queries. Retention by age and by count.
public final class AuditStore: Sendable {
    let pool: DatabasePool

    public init(path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var config = Configuration()
        config.busyMode = .timeout(5)
        // WAL with synchronous=NORMAL: a commit is not fsynced, yet survives the process being
        // killed (only a power loss can take the last commits); the batch writer's cost halves.
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        pool = try DatabasePool(path: path, configuration: config)
        try pool.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS audit (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    time REAL NOT NULL, request_id TEXT NOT NULL, sub TEXT, email TEXT, connection TEXT NOT NULL, kind TEXT NOT NULL,
                    mcp_method TEXT, tool TEXT, rest_method TEXT, path TEXT, decision TEXT NOT NULL, rule TEXT,
                    status INTEGER NOT NULL, error TEXT, duration_ms REAL NOT NULL, step_ups INTEGER NOT NULL,
                    consent_needed INTEGER NOT NULL, via TEXT NOT NULL);
                CREATE INDEX IF NOT EXISTS audit_time ON audit(time);
                """)
            // Added later: a database written by an older gateway gets the column.
            if try !db.columns(in: "audit").contains(where: { $0.name == "arguments" }) {
                try db.execute(sql: "ALTER TABLE audit ADD COLUMN arguments TEXT")
            }
        }
    }

    func insert(_ records: [AuditRecord]) throws {
        try pool.write { db in
            // Up to 32 rows per statement, each statement prepared once: SQLite's per-statement
            // work was most of the writer's cost at 20k calls/s.
            var rest = records[...]
            while !rest.isEmpty {
                let chunk = rest.prefix(32)
                rest = rest.dropFirst(chunk.count)
                let statement = try db.cachedStatement(sql: Self.insertSQL(rows: chunk.count))
                var values: [(any DatabaseValueConvertible)?] = []
                values.reserveCapacity(chunk.count * 19)
                for r in chunk {
                    values += [r.time, r.requestID, r.sub, r.email, r.connection, r.kind, r.mcpMethod, r.tool, r.restMethod, r.path, r.decision,
                               r.rule, r.status, r.error, r.durationMS, r.stepUps, r.consentNeeded, r.via, r.arguments] as [(any DatabaseValueConvertible)?]
                }
                try statement.execute(arguments: StatementArguments(values))
            }
        }
    }

    static func insertSQL(rows: Int) -> String {
        let row = "(" + Array(repeating: "?", count: 19).joined(separator: ", ") + ")"
        return """
            INSERT INTO audit (time, request_id, sub, email, connection, kind, mcp_method, tool, rest_method, path, decision, rule,
                               status, error, duration_ms, step_ups, consent_needed, via, arguments)
            VALUES \(Array(repeating: row, count: rows).joined(separator: ", "))
            """
    }

    /// Drops records older than `maxAge` seconds, then the oldest beyond `maxRecords`.
    func prune(olderThan cutoff: Double, maxRecords: Int) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM audit WHERE time < ?", arguments: [cutoff])
            try db.execute(sql: "DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?)", arguments: [maxRecords])
        }
    }

    /// Newest first.
    public func query(_ q: AuditQuery) throws -> [AuditRecord] {
        var clauses: [String] = []
        var args: [any DatabaseValueConvertible] = []
        if let v = q.user { clauses.append("(sub = ? OR email = ?)"); args += [v, v] }
        if let v = q.connection { clauses.append("connection = ?"); args.append(v) }
        if let v = q.tool { clauses.append("tool = ?"); args.append(v) }
        if let v = q.decision { clauses.append("decision = ?"); args.append(v) }
        if let v = q.since { clauses.append("time >= ?"); args.append(v) }
        let filter = clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")
        args.append(max(1, min(q.limit, 100_000)))
        return try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit\(filter) ORDER BY id DESC LIMIT ?", arguments: StatementArguments(args)).map { row in
                AuditRecord(
                    time: row["time"], requestID: row["request_id"], sub: row["sub"], email: row["email"], connection: row["connection"], kind: row["kind"],
                    mcpMethod: row["mcp_method"], tool: row["tool"], restMethod: row["rest_method"], path: row["path"], decision: row["decision"],
                    rule: row["rule"], status: row["status"], error: row["error"], durationMS: row["duration_ms"], stepUps: row["step_ups"],
                    consentNeeded: row["consent_needed"], via: row["via"], arguments: row["arguments"])
            }
        }
    }
}
