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

    let store: AuditStore?
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
        self.store = try settings.sqlitePath.map { try AuditStore(path: $0) }
    }

    /// Hands a record to the writer: a lock and an append (a full buffer drops it and says so).
    func record(_ r: AuditRecord) {
        let kept = pending.withLock { p -> Bool in
            guard p.count < Self.maxPending else { return false }
            p.append(r)
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
        // Record ids: this process's random prefix and a counter (UUID() opened /dev/urandom per
        // record on Linux: the writer's largest cost at 20k calls/s).
        let idPrefix = UUID().uuidString.lowercased().prefix(18) + "-"
        var serial: UInt64 = 0
        func flush() {
            var batch = pending.withLock { p -> [AuditRecord] in
                defer { p.removeAll(keepingCapacity: true) }
                return p
            }
            let lost = dropped.exchange(0, ordering: .relaxed)
            if lost > 0 { logger.warning("audit buffer full: records dropped", metadata: ["count": "\(lost)"]) }
            guard !batch.isEmpty else { return }
            for i in batch.indices {
                serial += 1
                batch[i].complete(id: idPrefix + String(serial, radix: 16))
            }
            do {
                try store?.insert(batch)
            } catch {
                logger.error("audit records could not be written", metadata: ["count": "\(batch.count)", "error": "\(error)"])
            }
            if let jsonl {
                var text = Data()
                for r in batch { if let line = try? encoder.encode(r) { text += line + Data("\n".utf8) } }
                try? jsonl.write(contentsOf: text)
            }
            if ContinuousClock.now - lastPrune > .seconds(60), let store {
                lastPrune = .now
                let cutoff = Date().timeIntervalSince1970 - Double(settings.retention.components.seconds)
                try? store.prune(olderThan: cutoff, maxRecords: settings.maxRecords)
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
