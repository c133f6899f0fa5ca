/// A configuration problem with its place in the file and what to do about it.
///
/// Plugins throw ``PluginConfigError`` from validation; the gateway turns it into a
/// `ConfigError` that names the file, line and column of the offending key.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file the problem is in (as the user named it).
    public var file: String
    /// Where in the file, when known.
    public var location: SourceLocation?
    /// What is wrong.
    public var message: String
    /// What to do about it.
    public var hint: String?

    public init(file: String, location: SourceLocation?, message: String, hint: String? = nil) {
        self.file = file
        self.location = location
        self.message = message
        self.hint = hint
    }

    /// `file:line:column: message (hint)`, the format compilers use, so editors can jump to it.
    public var description: String {
        var s = file
        if let location { s += ":\(location.line):\(location.column)" }
        s += ": error: \(message)"
        if let hint { s += " — \(hint)" }
        return s
    }
}

/// One or more configuration problems, reported together.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]

    public init(_ errors: [ConfigError]) { self.errors = errors }

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// A problem a plugin finds in its own `auth` parameters.
///
/// `key` names the parameter (e.g. `"authorization_server"`); the gateway points the error at
/// that key's line and column, or at the `auth` block when `key` is nil.
public struct PluginConfigError: Error, Sendable, Equatable {
    public var key: String?
    public var message: String
    public var hint: String?

    public init(key: String?, message: String, hint: String? = nil) {
        self.key = key
        self.message = message
        self.hint = hint
    }
}
