import Foundation
import Logging
import SwitchboardJSON
import Synchronization

/// `LOG_FORMAT=json`: one JSON object per line on stderr — `time` (RFC 3339, UTC, ms), `level`,
/// `logger`, `message`, `source`, and each metadata key at the top level (a key that would
/// overwrite one of those is written as `metadata.KEY`). For log collectors that parse lines;
/// the text format stays the default. What is logged is the same in both: never a token.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    static let reserved: Set<String> = ["time", "level", "logger", "message", "source"]
    /// One line per write(2) under a lock: lines from several threads never interleave.
    private static let output = Mutex<FileHandle>(FileHandle.standardError)

    init(label: String, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [String: JSONValue] = [
            "time": .string(Self.timestamp(Date())), "level": .string(event.level.rawValue), "logger": .string(label),
            "message": .string(event.message.description), "source": .string(event.source),
        ]
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        for (key, value) in all {
            fields[Self.reserved.contains(key) ? "metadata." + key : key] = Self.json(value)
        }
        var line = JSONValue.object(fields).encoded()
        line.append(0x0A)
        Self.output.withLock { $0.write(line) }
    }

    static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let s): return .string(s)
        case .stringConvertible(let c): return .string(c.description)
        case .array(let items): return .array(items.map(json))
        case .dictionary(let d): return .object(d.mapValues(json))
        }
    }

    /// `2026-12-07T06:28:01.123Z`.
    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
