import Foundation
import GRDB
import GRDBSQLite

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
                    id INTEGER PRIMARY KEY,
                    time REAL NOT NULL, request_id TEXT NOT NULL, sub TEXT, email TEXT, connection TEXT NOT NULL, kind TEXT NOT NULL,
                    mcp_method TEXT, tool TEXT, rest_method TEXT, path TEXT, decision TEXT NOT NULL, rule TEXT,
                    status INTEGER NOT NULL, error TEXT, duration_ms REAL NOT NULL, step_ups INTEGER NOT NULL,
                    consent_needed INTEGER NOT NULL, via TEXT NOT NULL);
                """)
            // No index on time (an older gateway made one): rows are appended as calls end, so
            // the rowid is already in time order — pruning walks it from the oldest, a query
            // from the newest — and an index cost a quarter of each insert at 20k calls/s.
            try db.execute(sql: "DROP INDEX IF EXISTS audit_time")
            // Added later: a database written by an older gateway gets the column.
            if try !db.columns(in: "audit").contains(where: { $0.name == "arguments" }) {
                try db.execute(sql: "ALTER TABLE audit ADD COLUMN arguments TEXT")
            }
        }
    }

    func insert(_ records: [AuditRecord]) throws {
        try pool.write { db in
            // Up to 32 rows per statement, bound through SQLite's own API: GRDB's arguments box
            // each value in an existential and convert it again, which was most of the writer's
            // cost at 20k calls/s (bench/run's "audit on" cell). Prepared once per batch.
            guard let sqlite = db.sqliteConnection else { throw DatabaseError(resultCode: .SQLITE_MISUSE, message: "the audit database is closed") }
            var statements: [Int: OpaquePointer] = [:]
            defer { for statement in statements.values { sqlite3_finalize(statement) } }
            func fail(_ code: CInt) -> DatabaseError {
                DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(sqlite)))
            }
            var rest = records[...]
            while !rest.isEmpty {
                let chunk = rest.prefix(32)
                rest = rest.dropFirst(chunk.count)
                let statement: OpaquePointer
                if let prepared = statements[chunk.count] {
                    statement = prepared
                } else {
                    var made: OpaquePointer?
                    let code = sqlite3_prepare_v2(sqlite, Self.insertSQL(rows: chunk.count), -1, &made, nil)
                    guard code == SQLITE_OK, let made else { throw fail(code) }
                    statements[chunk.count] = made
                    statement = made
                }
                var index: CInt = 0
                func text(_ value: String?) {
                    index += 1
                    guard var value else { sqlite3_bind_null(statement, index); return }
                    _ = value.withUTF8 { sqlite3_bind_text(statement, index, $0.baseAddress, CInt($0.count), Self.transient) }
                }
                func number(_ value: Double) { index += 1; sqlite3_bind_double(statement, index, value) }
                func integer(_ value: Int) { index += 1; sqlite3_bind_int64(statement, index, Int64(value)) }
                for r in chunk {  // in insertSQL's column order
                    number(r.time); text(r.requestID); text(r.sub); text(r.email); text(r.connection); text(r.kind); text(r.mcpMethod)
                    text(r.tool); text(r.restMethod); text(r.path); text(r.decision); text(r.rule); integer(r.status); text(r.error)
                    number(r.durationMS); integer(r.stepUps); integer(r.consentNeeded ? 1 : 0); text(r.via); text(r.arguments)
                }
                let code = sqlite3_step(statement)
                guard code == SQLITE_DONE else { throw fail(code) }
                sqlite3_reset(statement)
            }
        }
    }

    /// SQLite copies the bound text (the Swift string's bytes live only for the call).
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    static func insertSQL(rows: Int) -> String {
        let row = "(" + Array(repeating: "?", count: 19).joined(separator: ", ") + ")"
        return """
            INSERT INTO audit (time, request_id, sub, email, connection, kind, mcp_method, tool, rest_method, path, decision, rule,
                               status, error, duration_ms, step_ups, consent_needed, via, arguments)
            VALUES \(Array(repeating: row, count: rows).joined(separator: ", "))
            """
    }

    /// Drops the records before the first one at or after `cutoff` (seconds since 1970; rows are
    /// in time order, give or take the few milliseconds between two event loops), then the
    /// oldest beyond `maxRecords`. Reads only the rows it drops and one more.
    func prune(olderThan cutoff: Double, maxRecords: Int) throws {
        try pool.write { db in
            try db.execute(sql: """
                DELETE FROM audit WHERE id < coalesce((SELECT id FROM audit WHERE time >= ? ORDER BY id LIMIT 1), (SELECT max(id) + 1 FROM audit))
                """, arguments: [cutoff])
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
