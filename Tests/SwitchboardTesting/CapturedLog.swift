public import Logging
import Synchronization

/// Keeps every log line a component under test writes (message and metadata as strings), so a
/// test can check what was logged: the access log's fields, and that no secret appears.
public final class CapturedLog: Sendable {
    public struct Line: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]
    }

    private let lines = Mutex<[Line]>([])

    public init() {}

    /// Every line so far, in order.
    public var all: [Line] { lines.withLock { $0 } }

    /// A logger at `level` that writes here.
    public func logger(label: String = "under-test", level: Logger.Level = .info) -> Logger {
        var logger = Logger(label: label) { _ in Handler(sink: self) }
        logger.logLevel = level
        return logger
    }

    fileprivate func append(_ line: Line) { lines.withLock { $0.append(line) } }

    private struct Handler: LogHandler {
        let sink: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var all = metadata
            if let more = event.metadata { all.merge(more) { $1 } }
            sink.append(Line(level: event.level, message: "\(event.message)", metadata: all.mapValues { "\($0)" }))
        }
    }
}
