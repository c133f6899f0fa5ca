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
    private let stream: AsyncStream<AuditRecord>
    private let continuation: AsyncStream<AuditRecord>.Continuation
    private let dropped = Atomic<Int>(0)
    static let batchSize = 500
    static let flushInterval: Duration = .milliseconds(100)

    init(settings: Settings, logger: Logger) throws {
        self.settings = settings
        self.logger = logger
        self.store = try settings.sqlitePath.map { try AuditStore(path: $0) }
        (stream, continuation) = AsyncStream.makeStream(of: AuditRecord.self, bufferingPolicy: .bufferingNewest(100_000))
    }

    /// Hands a record to the writer (never blocks; a full buffer drops the oldest and says so).
    func record(_ r: AuditRecord) {
        if case .dropped = continuation.yield(r) { dropped.add(1, ordering: .relaxed) }
    }

    func run() async throws {
        var jsonl: FileHandle?
        if let target = settings.jsonLines {
            if target == "stdout" {
                jsonl = FileHandle.standardOutput
            } else {
                if !FileManager.default.fileExists(atPath: target) { FileManager.default.createFile(atPath: target, contents: nil) }
                jsonl = FileHandle(forWritingAtPath: target)
                _ = try? jsonl?.seekToEnd()
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var batch: [AuditRecord] = []
        var lastPrune = ContinuousClock.now - .seconds(3600)
        func flush() {
            guard !batch.isEmpty else { return }
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
            batch.removeAll(keepingCapacity: true)
            let lost = dropped.exchange(0, ordering: .relaxed)
            if lost > 0 { logger.warning("audit buffer full: records dropped", metadata: ["count": "\(lost)"]) }
            if ContinuousClock.now - lastPrune > .seconds(60), let store {
                lastPrune = .now
                let cutoff = Date().timeIntervalSince1970 - Double(settings.retention.components.seconds)
                try? store.prune(olderThan: cutoff, maxRecords: settings.maxRecords)
            }
        }
        // Batches: whatever arrived within the interval (or a full batch), then written at once.
        let ticker = Task { [continuation] in
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.flushInterval)
                continuation.yield(Self.tick)
            }
        }
        defer { ticker.cancel() }
        await withGracefulShutdownHandler {
            for await r in stream {
                if r.requestID == Self.tick.requestID {
                    flush()
                    continue
                }
                batch.append(r)
                if batch.count >= Self.batchSize { flush() }
            }
            flush()
        } onGracefulShutdown: { [continuation] in
            continuation.finish()  // what is buffered is written, then the loop ends
        }
        try? jsonl?.synchronize()
    }

    /// A marker record that flushes the batch (never stored).
    static let tick = AuditRecord(
        time: 0, requestID: "\u{0}tick", connection: "", kind: "", decision: "", status: 0, durationMS: 0, stepUps: 0, consentNeeded: false, via: "")
}
