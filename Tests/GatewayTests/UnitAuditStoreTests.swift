import Foundation
@testable import Gateway
import Testing

/// The audit trail's SQLite store: batches (several statements' worth) go in whole, queries
/// filter and order newest first, pruning keeps the newest within age and count.
@Suite("Unit: audit store")
struct UnitAuditStoreTests {
    static func record(_ i: Int, time: Double, decision: String = "allowed", user: String = "alice") -> AuditRecord {
        AuditRecord(
            time: time, requestID: "r\(i)", sub: "00u-\(user)", email: "\(user)@example.test", connection: i % 2 == 0 ? "todo0" : "github", kind: "mcp",
            mcpMethod: "tools/call", tool: i % 3 == 0 ? "delete-todo" : "get-todos", decision: decision, rule: decision == "denied" ? "admins-delete" : nil,
            status: 200, durationMS: 1.5, stepUps: 0, consentNeeded: false, via: "event-loop")
    }

    @Test func batchesQueriesAndPruning() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try AuditStore(path: dir + "/audit.sqlite")
        let now = Date().timeIntervalSince1970
        // 101 records: four full 32-row statements' worth and a remainder.
        var records = (0..<101).map { Self.record($0, time: now - 1000 + Double($0), decision: $0 == 50 ? "denied" : "allowed", user: $0 < 60 ? "alice" : "bob") }
        records[7].arguments = #"{"title":"caf\u00e9 ✓","nul":"a\u0000b"}"#
        records[8].email = "ünïcödé@example.test"
        records[9].path = "/a%20b/ü"
        records[10].stepUps = 2
        records[10].consentNeeded = true
        try store.insert(records)
        let all = try store.query(AuditQuery(limit: 1000))
        let changed = zip(all.reversed(), records).filter { $0 != $1 }.first
        #expect(all.count == records.count && changed == nil, "every field comes back as written: \(String(describing: changed))")
        #expect(all.count == 101 && all.first?.requestID == "r100" && all.last?.requestID == "r0", "newest first")
        #expect(Set(all.map(\.requestID)).count == 101)
        #expect(try store.query(AuditQuery(decision: "denied")).map(\.requestID) == ["r50"])
        #expect(try store.query(AuditQuery(user: "bob@example.test")).count == 41)
        #expect(try store.query(AuditQuery(user: "00u-alice", connection: "todo0", tool: "delete-todo")).allSatisfy { $0.sub == "00u-alice" && $0.tool == "delete-todo" })
        #expect(try store.query(AuditQuery(since: now - 1000 + 90)).count == 11)
        try store.prune(olderThan: now - 1000 + 10, maxRecords: 50)
        let kept = try store.query(AuditQuery(limit: 1000))
        #expect(kept.count == 50 && kept.first?.requestID == "r100" && kept.last?.requestID == "r51", "the newest 50 within the age")
    }

    /// The writer prunes with every batch, in its transaction: the trail never holds more than
    /// `maxRecords` after a batch, and what ages out goes with the next one.
    @Test func eachBatchPrunesWhatTheTrailNoLongerKeeps() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try AuditStore(path: dir + "/audit.sqlite")
        let now = Date().timeIntervalSince1970
        for batch in 0..<3 {
            try store.insert((0..<40).map { Self.record(batch * 40 + $0, time: now - 1000 + Double(batch * 40 + $0)) },
                             retention: .init(cutoff: now - 2000, maxRecords: 50))
            let kept = try store.query(AuditQuery(limit: 1000))
            #expect(kept.count == min(50, (batch + 1) * 40) && kept.first?.requestID == "r\(batch * 40 + 39)", "batch \(batch): \(kept.count)")
        }
        #expect(try store.query(AuditQuery(limit: 1000)).last?.requestID == "r70", "the newest 50: r70 to r119")
        try store.insert([Self.record(120, time: now)], retention: .init(cutoff: now - 1000 + 100, maxRecords: 50))
        #expect(try store.query(AuditQuery(limit: 1000)).map(\.requestID) == ["r120"] + (100..<120).reversed().map { "r\($0)" }, "r70 to r99 aged out")
    }

    /// A record the writer numbered (no request id of its own) is stored with the process's
    /// prefix and its serial in hex — text made only in the store's arena.
    @Test func writerNumberedRecordsGetThePrefixAndSerial() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try AuditStore(path: dir + "/audit.sqlite")
        let serials: [UInt64] = [1, 0x2a, 0xffff, UInt64.max, 0x10]
        let records = serials.enumerated().map { i, serial in
            var r = Self.record(i, time: 1000 + Double(i))
            r.requestID = i == 4 ? "caller-given" : ""
            r.serial = serial
            return r
        }
        try store.insert(records, idPrefix: "0a1b2c3d-4e5f-6789-")
        let ids = try store.query(AuditQuery(limit: 10)).reversed().map(\.requestID)
        #expect(ids == ["0a1b2c3d-4e5f-6789-1", "0a1b2c3d-4e5f-6789-2a", "0a1b2c3d-4e5f-6789-ffff", "0a1b2c3d-4e5f-6789-ffffffffffffffff", "caller-given"])
    }

    /// Age alone: the rows before the first one within the age go; when every row is too old,
    /// every row goes (the walk from the oldest finds no row within the age).
    @Test func pruningByAge() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try AuditStore(path: dir + "/audit.sqlite")
        let now = Date().timeIntervalSince1970
        try store.insert((0..<40).map { Self.record($0, time: now - 1000 + Double($0)) })
        try store.prune(olderThan: now - 1000 + 25, maxRecords: 1_000_000)
        let kept = try store.query(AuditQuery(limit: 1000))
        #expect(kept.count == 15 && kept.last?.requestID == "r25", "records from r25 on are within the age: \(kept.map(\.requestID))")
        try store.prune(olderThan: now, maxRecords: 1_000_000)
        #expect(try store.query(AuditQuery(limit: 1000)).isEmpty)
        // A store opened again over the file (as after a restart) goes on appending.
        try store.insert([Self.record(99, time: now)])
        let reopened = try AuditStore(path: dir + "/audit.sqlite")
        #expect(try reopened.query(AuditQuery()).map(\.requestID) == ["r99"])
    }
}
