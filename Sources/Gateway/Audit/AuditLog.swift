import Foundation
import Logging
import ServiceLifecycle
import SwitchboardJSON
import Synchronization

/// The audit trail's writer: calls hand their record over without waiting (the request path
/// never touches the disk); a service writes them in batches — to SQLite every 100 ms or 500
/// records, and as JSON lines to a file or stdout when configured — and prunes by age and count.
///
/// What a `kill -9` loses: the records handed over in the last batch interval and not yet
/// written (at most ~100 ms of calls, or what a stalled disk holds back). A graceful shutdown
/// writes everything first.
final class AuditLog: Service, Sendable {
    struct Settings: Sendable, Equatable {
        /// The SQLite file; nil: none.
        public var sqlitePath: String?
        /// A JSON-lines file, or `stdout`; nil: none.
        public var jsonLines: String?
        public var retention: Duration = .seconds(30 * 86400)
        public var maxRecords: Int = 1_000_000

        public init(sqlitePath: String? = nil, jsonLines: String? = nil) {
            self.sqlitePath = sqlitePath
            self.jsonLines = jsonLines
        }
    }

    /// The SQLite store writing now: replaced by a fresh one when its file disappears (see
    /// ``reopenIfRemoved()``); read by `GET /api/audit` through ``currentStore``.
    private let store: Mutex<AuditStore?>
    var currentStore: AuditStore? { store.withLock { $0 } }
    let settings: Settings
    private let logger: Logger
    /// Records handed over and not yet written: appended under a lock by the request path (no
    /// task is woken per call), swapped out by the writer every interval.
    private let pending = Mutex<[AuditRecord]>([])
    private let dropped = Atomic<Int>(0)
    static let maxPending = 100_000
    static let flushInterval: Duration = .milliseconds(100)

    init(settings: Settings, logger: Logger) throws {
        self.settings = settings
        self.logger = logger
        self.store = Mutex(try settings.sqlitePath.map { try AuditStore(path: $0) })
        self.fileID = Mutex(settings.sqlitePath.flatMap(Self.fileID))
    }

    /// The inode of the file the store was opened on: SQLite keeps writing to a file that was
    /// deleted or replaced (through its open descriptor), so the writer checks the path.
    private let fileID: Mutex<UInt64?>

    private static func fileID(_ path: String) -> UInt64? {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.systemFileNumber] as? NSNumber)?.uint64Value
    }

    /// When the database file is gone or is another file (removed, its directory removed,
    /// replaced), the records written since went nowhere: say so, and open the path afresh.
    func reopenIfRemoved() {
        guard let path = settings.sqlitePath else { return }
        let now = Self.fileID(path)
        guard now == nil || now != fileID.withLock({ $0 }) else { return }
        logger.error("the audit database file was removed or replaced; opening it afresh (records since the last check are lost)",
                     metadata: ["file": "\(path)"])
        do {
            let fresh = try AuditStore(path: path)
            store.withLock { $0 = fresh }
            fileID.withLock { $0 = Self.fileID(path) }
        } catch {
            logger.error("the audit database cannot be opened again; audit records are not being kept", metadata: ["file": "\(path)", "error": "\(error)"])
        }
    }

    /// Hands a record to the writer: a lock and an append (a full buffer drops it and says so).
    /// The record is moved in, not copied (a copy retains, and its drop releases, each of its strings).
    func record(_ r: consuming AuditRecord) {
        var moving: AuditRecord? = consume r
        let kept = pending.withLock { p -> Bool in
            guard p.count < Self.maxPending else { return false }
            p.append(moving.take()!)
            return true
        }
        if !kept { dropped.add(1, ordering: .relaxed) }
    }

    func run() async throws {
        var jsonl: FileHandle?
        if let target = settings.jsonLines {
            if target == "stdout" {
                jsonl = FileHandle.standardOutput
            } else {
                if !FileManager.default.fileExists(atPath: target) { _ = FileManager.default.createFile(atPath: target, contents: nil) }
                jsonl = FileHandle(forWritingAtPath: target)
                _ = try? jsonl?.seekToEnd()
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var lastPrune = ContinuousClock.now - .seconds(3600)
        var jsonlFailures = 0
        var lastJSONLWarning = ContinuousClock.now - .seconds(3600)
        // Record ids: this process's random prefix and a counter (UUID() opened /dev/urandom per
        // record on Linux: the writer's largest cost at 20k calls/s).
        let idPrefix = String(UUID().uuidString.lowercased().prefix(18)) + "-"
        var serial: UInt64 = 0
        func flush() {
            var batch = pending.withLock { p -> [AuditRecord] in
                defer { p.removeAll(keepingCapacity: true) }
                return p
            }
            let lost = dropped.exchange(0, ordering: .relaxed)
            if lost > 0 { logger.warning("audit buffer full: records dropped", metadata: ["count": "\(lost)"]) }
            let retention = AuditStore.Retention(
                cutoff: Date().timeIntervalSince1970 - Double(settings.retention.components.seconds), maxRecords: settings.maxRecords)
            guard !batch.isEmpty else {
                // Idle: records still age out (each batch prunes as it writes).
                if ContinuousClock.now - lastPrune > .seconds(60), let store = currentStore {
                    lastPrune = .now
                    try? store.prune(olderThan: retention.cutoff, maxRecords: retention.maxRecords)
                }
                return
            }
            for i in batch.indices {
                serial += 1
                batch[i].complete(serial: serial)
            }
            reopenIfRemoved()  // one stat per batch (at most ten a second)
            let store = currentStore
            do {
                try store?.insert(batch, idPrefix: idPrefix, retention: retention)
                lastPrune = .now
            } catch {
                logger.error("audit records could not be written", metadata: ["count": "\(batch.count)", "error": "\(error)"])
            }
            if let jsonl {
                var text = Data()
                for var r in batch {
                    if r.requestID.isEmpty { r.requestID = idPrefix + String(r.serial, radix: 16) }
                    if let line = try? encoder.encode(r) { text += line + Data("\n".utf8) }
                }
                do {
                    try jsonl.write(contentsOf: text)
                } catch {
                    // A full disk, a closed pipe: said (at most every 10 s, with the count), never silent.
                    jsonlFailures += batch.count
                    if ContinuousClock.now - lastJSONLWarning > .seconds(10) {
                        lastJSONLWarning = .now
                        logger.error("audit JSON lines could not be written", metadata: [
                            "target": "\(settings.jsonLines ?? "")", "records": "\(jsonlFailures)", "error": "\(error)"])
                        jsonlFailures = 0
                    }
                }
            }
        }
        // Every interval, what arrived is written at once; at shutdown, the rest.
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await Task.sleep(for: Self.flushInterval)
            flush()
        }
        try? await Task.sleep(for: Self.flushInterval)  // calls answered while the server drains
        flush()
        try? jsonl?.synchronize()
    }
}
