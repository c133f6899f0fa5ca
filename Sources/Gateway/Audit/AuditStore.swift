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

    /// What the trail keeps: records newer than `cutoff` (seconds since 1970), at most `maxRecords`.
    struct Retention: Sendable {
        var cutoff: Double
        var maxRecords: Int
    }

    /// Writes `records`; one whose `requestID` is empty gets `idPrefix` and its `serial` in hex.
    /// With `retention`, the records it no longer keeps are dropped in the same transaction.
    func insert(_ records: [AuditRecord], idPrefix: String = "", retention: Retention? = nil) throws {
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
            // A chunk's text goes into one byte arena bound in place (SQLITE_STATIC): SQLite's
            // copy of each bound string (SQLITE_TRANSIENT) was one malloc per text column per row,
            // most of the writer's allocations.
            var text = RowText()
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
                text.removeAll()
                // Fields read through the array, never a record copied whole (a copy retains and
                // releases every one of its strings: a visible part of the writer's time).
                for i in chunk.indices {  // the text columns, in insertSQL's order
                    if records[i].requestID.isEmpty {
                        text.keepID(prefix: idPrefix, serial: records[i].serial)
                    } else {
                        text.keep(records[i].requestID)
                    }
                    text.keep(records[i].sub); text.keep(records[i].email); text.keep(records[i].connection); text.keep(records[i].kind)
                    text.keep(records[i].mcpMethod); text.keep(records[i].tool); text.keep(records[i].restMethod); text.keep(records[i].path)
                    text.keep(records[i].decision); text.keep(records[i].rule); text.keep(records[i].error); text.keep(records[i].via)
                    text.keep(records[i].arguments)
                }
                let slots = text.slots
                let code = text.arena.withUnsafeBufferPointer { bytes -> CInt in
                    var bind = Binder(statement: statement, bytes: bytes, slots: slots)
                    for i in chunk.indices {  // in insertSQL's column order
                        bind.number(records[i].time); bind.text(); bind.text(); bind.text(); bind.text(); bind.text(); bind.text()
                        bind.text(); bind.text(); bind.text(); bind.text(); bind.text(); bind.integer(records[i].status); bind.text()
                        bind.number(records[i].durationMS); bind.integer(records[i].stepUps); bind.integer(records[i].consentNeeded ? 1 : 0)
                        bind.text(); bind.text()
                    }
                    let code = sqlite3_step(statement)
                    sqlite3_reset(statement)
                    sqlite3_clear_bindings(statement)  // no pointer into the arena outlives this closure
                    return code
                }
                guard code == SQLITE_DONE else { throw fail(code) }
            }
            // A failed prune (a statement rolled back alone) must not take the batch with it.
            if let retention { try? Self.prune(db, retention) }
        }
    }

    /// The text columns per row (`slots` per record in ``insert(_:idPrefix:)``).
    static let textColumns = 14

    /// A chunk's text columns: their bytes one after another in `arena`, and where each is (nil:
    /// NULL). A struct with mutating methods, not local functions over captured variables: those
    /// were checked for exclusive access at run time on every append (8 % of the writer's time).
    struct RowText {
        var arena: [UInt8] = []
        var slots: [(offset: Int, count: Int)?] = []

        init() {
            arena.reserveCapacity(32 * 256)
            slots.reserveCapacity(32 * AuditStore.textColumns)
        }

        mutating func removeAll() {
            arena.removeAll(keepingCapacity: true)
            slots.removeAll(keepingCapacity: true)
        }

        mutating func keep(_ value: String?) {
            guard let value else { slots.append(nil); return }
            let offset = arena.count
            arena.append(contentsOf: value.utf8)
            slots.append((offset, arena.count - offset))
        }

        /// A record id: the process's prefix and the record's serial in hex.
        mutating func keepID(prefix: String, serial: UInt64) {
            let offset = arena.count
            arena.append(contentsOf: prefix.utf8)
            AuditStore.appendHex(serial, to: &arena)
            slots.append((offset, arena.count - offset))
        }
    }

    /// Binds one statement's parameters in order: numbers as given, text from the arena's slots.
    struct Binder {
        let statement: OpaquePointer
        let bytes: UnsafeBufferPointer<UInt8>
        let slots: [(offset: Int, count: Int)?]
        var index: CInt = 0
        var slot = 0

        mutating func text() {
            index += 1
            defer { slot += 1 }
            guard let s = slots[slot] else { sqlite3_bind_null(statement, index); return }
            sqlite3_bind_text(statement, index, UnsafeRawPointer(bytes.baseAddress! + s.offset).assumingMemoryBound(to: CChar.self), CInt(s.count), AuditStore.static)
        }

        mutating func number(_ value: Double) { index += 1; sqlite3_bind_double(statement, index, value) }
        mutating func integer(_ value: Int) { index += 1; sqlite3_bind_int64(statement, index, Int64(value)) }
    }

    static func appendHex(_ value: UInt64, to bytes: inout [UInt8]) {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var shift = 60
        while shift > 0, (value >> UInt64(shift)) & 0xF == 0 { shift -= 4 }
        while shift >= 0 {
            bytes.append(digits[Int((value >> UInt64(shift)) & 0xF)])
            shift -= 4
        }
    }

    /// The arena outlives each statement's step (bindings are cleared before it goes).
    fileprivate static let `static` = unsafeBitCast(OpaquePointer(bitPattern: 0), to: sqlite3_destructor_type.self)

    static func insertSQL(rows: Int) -> String {
        let row = "(" + Array(repeating: "?", count: 19).joined(separator: ", ") + ")"
        return """
            INSERT INTO audit (time, request_id, sub, email, connection, kind, mcp_method, tool, rest_method, path, decision, rule,
                               status, error, duration_ms, step_ups, consent_needed, via, arguments)
            VALUES \(Array(repeating: row, count: rows).joined(separator: ", "))
            """
    }

    /// Drops the records older than `cutoff` (seconds since 1970), then the oldest beyond `maxRecords`.
    func prune(olderThan cutoff: Double, maxRecords: Int) throws {
        try pool.write { db in try Self.prune(db, Retention(cutoff: cutoff, maxRecords: maxRecords)) }
    }

    /// Rows are appended in id order (give or take the few milliseconds between two event loops)
    /// and only the oldest are ever dropped, so the ids have no gaps: the newest `maxRecords` are
    /// those above max(id) − maxRecords, and the records past their age are a prefix. Each
    /// statement reads only the rows it drops and one more — run with every batch, pruning costs
    /// what it drops as it goes. (Once a minute, with `OFFSET maxRecords`, it walked up to a
    /// million rows, then dropped a minute of calls at once: seconds of the writer's CPU and disk,
    /// landing on whatever the gateway was doing then.)
    static func prune(_ db: Database, _ retention: Retention) throws {
        try db.execute(sql: "DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) - ?", arguments: [retention.maxRecords])
        try db.execute(sql: """
            DELETE FROM audit WHERE id < coalesce((SELECT id FROM audit WHERE time >= ? ORDER BY id LIMIT 1), (SELECT max(id) + 1 FROM audit))
            """, arguments: [retention.cutoff])
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
