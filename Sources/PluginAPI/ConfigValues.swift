import Foundation

/// Thrown from a config value's `init(from:)` to report a bad value; the decoder attaches
/// the line and column.
public struct ConfigValueError: Error, Sendable {
    public var message: String
    public var hint: String?

    public init(_ message: String, hint: String? = nil) {
        self.message = message
        self.hint = hint
    }
}

/// A secret from the config: a literal, or `file:PATH` read from a file at load time.
///
/// Relative paths resolve against the config file's directory. The value never prints:
/// `description` is `<redacted>`. Read it with ``Secret/reveal()`` where it is used.
public struct Secret: Decodable, Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    private let value: String
    /// Where the value came from (`file:/abs/path` or `inline`), safe to show.
    public let source: String

    public init(_ value: String, source: String = "inline") {
        self.value = value
        self.source = source
    }

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard raw.hasPrefix("file:") else {
            self.init(raw)
            return
        }
        let path = String(raw.dropFirst("file:".count))
        guard !path.isEmpty else { throw ConfigValueError("'file:' needs a path", hint: "write file:/path/to/secret") }
        let base = decoder.userInfo[ConfigDecoder.baseDirectoryKey] as? String ?? "."
        let resolved = path.hasPrefix("/") ? path : base + "/" + path
        guard let data = FileManager.default.contents(atPath: resolved) else {
            throw ConfigValueError("cannot read secret file '\(resolved)'", hint: "create the file or point the setting at an existing one")
        }
        guard var text = String(data: data, encoding: .utf8) else {
            throw ConfigValueError("secret file '\(resolved)' is not UTF-8 text")
        }
        while text.last == "\n" || text.last == "\r" { text.removeLast() }
        self.init(text, source: "file:\(resolved)")
    }

    /// The secret itself. Never log it.
    public func reveal() -> String { value }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// A duration written as `250ms`, `5s`, `2m`, `1h`, `30d` (a bare number means seconds).
public struct ConfigDuration: Decodable, Sendable, Hashable, CustomStringConvertible {
    public var duration: Duration

    public init(_ duration: Duration) { self.duration = duration }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let d = ConfigDuration.parse(text) else {
            throw ConfigValueError("'\(text)' is not a duration", hint: "write e.g. 250ms, 5s, 2m, 1h or 30d (at most 100 years)")
        }
        self.duration = d
    }

    /// The longest duration accepted: 100 years (longer is a typo, and would not fit the
    /// nanosecond counts timers take — found by fuzzing: `1888…880s` trapped the loader).
    public static let maximumMilliseconds = 100.0 * 365 * 86_400_000

    /// The duration `text` writes, or nil (also what `switchboard audit --since` reads).
    public static func parse(_ text: String) -> Duration? {
        let t = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            if let v = Double(t.dropLast(suffix.count)) { return milliseconds(v * factor * 1000) }
            if suffix == "s" { break }  // "ms" already tried; "5xs" is not valid
        }
        return Double(t).flatMap { milliseconds($0 * 1000) }
    }

    private static func milliseconds(_ ms: Double) -> Duration? {
        guard ms >= 0, ms <= maximumMilliseconds else { return nil }  // also refuses NaN and infinities
        return .milliseconds(Int64(ms.rounded()))
    }

    public var description: String { "\(duration)" }
}

/// A size in bytes written as `1048576`, `512KiB`, `1MiB`, `10MB` (binary and decimal units).
public struct ConfigByteSize: Decodable, Sendable, Hashable {
    public var bytes: Int

    public init(_ bytes: Int) { self.bytes = bytes }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let b = ConfigByteSize.parse(text) else {
            throw ConfigValueError("'\(text)' is not a size", hint: "write e.g. 65536, 512KiB, 1MiB or 10MB")
        }
        self.bytes = b
    }

    static func parse(_ text: String) -> Int? {
        let t = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Int)] = [
            ("KiB", 1024), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1),
        ]
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            guard let v = Int(t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), v >= 0 else { return nil }
            let (r, overflow) = v.multipliedReportingOverflow(by: factor)
            return overflow ? nil : r
        }
        if let v = Int(t), v >= 0 { return v }
        return nil
    }
}
