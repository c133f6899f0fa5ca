public import Logging
import Synchronization

/// Keeps every line the plugin logs, at every level, so a test can assert what was logged —
/// above all that no token, key or assertion ever was (``reveals(_:)``).
public final class CapturingLog: Sendable {
    public struct Entry: Sendable {
        public var level: Logger.Level
        public var label: String
        public var message: String
        /// The logger's and the call's metadata, values rendered as text.
        public var metadata: [String: String]
        public var source: String

        /// `level label: message key=value …` (keys sorted).
        public var rendered: String {
            ([("\(level) \(label): \(message)")] + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
                .joined(separator: " ")
        }
    }

    private let lines = Mutex<[Entry]>([])

    public init() {}

    /// Every entry so far, in order.
    public var entries: [Entry] { lines.withLock { $0 } }

    /// Every entry rendered, one per line.
    public var text: String { entries.map(\.rendered).joined(separator: "\n") }

    /// A logger that writes here, at `.trace` unless told (so nothing is filtered out before it
    /// is captured). Also the gateway's tests' capture of its access log.
    public func logger(label: String, level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: label) { label in Handler(sink: self, label: label) }
        logger.logLevel = level
        return logger
    }

    /// True when the log contains `secret`, or any run of `window` consecutive characters of
    /// it: a token logged in part (a prefix, one JWT segment) counts as logged.
    public func reveals(_ secret: String, window: Int = 24) -> Bool {
        let text = self.text
        let characters = Array(secret)
        guard characters.count > window else { return !secret.isEmpty && text.contains(secret) }
        for start in 0...(characters.count - window) where text.contains(String(characters[start..<(start + window)])) {
            return true
        }
        return false
    }

    /// What in the log gives a secret away: each of `secrets` that ``reveals(_:window:)`` finds,
    /// and any key, bearer credential or JWT-shaped text; empty when nothing does. The check
    /// every plugin test makes after a credential was issued or refused.
    public func secretsShown(_ secrets: [String]) -> [String] {
        let text = self.text
        var shown: [String] = []
        for (index, secret) in secrets.enumerated() where reveals(secret) { shown.append("secret #\(index + 1) (or a part of it)") }
        for marker in ["PRIVATE KEY", "Bearer ", "eyJ"] where text.contains(marker) { shown.append("'\(marker)'") }
        return shown
    }

    fileprivate func append(_ entry: Entry) { lines.withLock { $0.append(entry) } }

    private struct Handler: LogHandler {
        let sink: CapturingLog
        let label: String
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var all = metadata
            if let more = event.metadata { all.merge(more) { $1 } }
            sink.append(Entry(
                level: event.level, label: label, message: "\(event.message)", metadata: all.mapValues { "\($0)" }, source: event.source))
        }
    }
}
