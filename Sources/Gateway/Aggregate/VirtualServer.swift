/// A virtual server (`virtual_servers:` in connections.yaml): a named subset of the merged
/// `/mcp` tools and prompts, served at `/mcp/v/{name}` — a small, focused tool set for one agent.
/// A name is included when an `include` glob matches it and no `exclude` glob does.
public struct VirtualServer: Sendable, Equatable {
    public var name: String
    public var title: String?
    public var include: [Glob]
    public var exclude: [Glob]

    /// Whether the prefixed name (`{connection}__{name}`) is on this server.
    func includes(_ name: String) -> Bool {
        include.contains { $0.matches(name) } && !exclude.contains { $0.matches(name) }
    }

    /// Whether any name of `connection` could be on this server (so it is asked at all).
    func mayInclude(connection: String) -> Bool {
        include.contains { $0.mayMatch(prefix: connection + AggregateNames.separator) }
    }
}

/// A shell-style glob over names: `*` (any run), `?` (one character), `[abc]` / `[a-z]` / `[!a]`
/// (one of a set); everything else matches itself.
public struct Glob: Sendable, Equatable, CustomStringConvertible {
    public static func == (a: Glob, b: Glob) -> Bool { a.description == b.description }

    enum Part: Sendable, Equatable {
        case literal(Character)
        case any
        case anyRun
        case set([ClosedRange<Character>], negated: Bool)
    }

    public let description: String
    let parts: [Part]
    /// The common shapes, matched without splitting the name into characters (policies match
    /// every call against every rule's globs).
    private let shape: Shape

    private enum Shape: Sendable, Equatable {
        case exactly(String)
        case prefix(String)
        case anything
        case general
    }

    init(description: String, parts: [Part]) {
        self.description = description
        self.parts = parts
        let literal = parts.dropLast().allSatisfy { if case .literal = $0 { return true } else { return false } }
        let text = String(parts.compactMap { if case .literal(let c) = $0 { return c } else { return nil } })
        switch parts.last {
        case .anyRun? where literal: shape = parts.count == 1 ? .anything : .prefix(text)
        case .literal? where literal: shape = .exactly(text)
        default: shape = .general
        }
    }

    /// Nil with the reason when `pattern` is not a glob (empty, an unclosed `[`).
    public static func parse(_ pattern: String) -> Result<Glob, GlobError> {
        guard !pattern.isEmpty else { return .failure(GlobError(message: "an empty glob matches nothing")) }
        var parts: [Part] = []
        var chars = Array(pattern)[...]
        while let c = chars.popFirst() {
            switch c {
            case "*": if parts.last != .anyRun { parts.append(.anyRun) }
            case "?": parts.append(.any)
            case "[":
                var negated = false
                if chars.first == "!" || chars.first == "^" { negated = true; chars.removeFirst() }
                var ranges: [ClosedRange<Character>] = []
                var closed = false
                var first = true
                while let d = chars.popFirst() {
                    if d == "]" && !first { closed = true; break }
                    first = false
                    if chars.count >= 2, chars.first == "-", chars.dropFirst().first != "]" {
                        chars.removeFirst()
                        let end = chars.removeFirst()
                        guard d <= end else { return .failure(GlobError(message: "the range '\(d)-\(end)' in '\(pattern)' is backwards")) }
                        ranges.append(d...end)
                    } else {
                        ranges.append(d...d)
                    }
                }
                guard closed else { return .failure(GlobError(message: "'[' in '\(pattern)' is never closed")) }
                parts.append(.set(ranges, negated: negated))
            default: parts.append(.literal(c))
            }
        }
        return .success(Glob(description: pattern, parts: parts))
    }

    public func matches(_ name: String) -> Bool {
        switch shape {
        case .exactly(let text): return name == text
        case .prefix(let text): return name.utf8.starts(with: text.utf8)  // bytes: hasPrefix compares by Unicode equivalence, slowly
        case .anything: return true
        case .general: return Self.match(parts[...], Array(name)[...], prefixOnly: false)
        }
    }

    /// Whether some name starting with `prefix` could match.
    func mayMatch(prefix: String) -> Bool { Self.match(parts[...], Array(prefix)[...], prefixOnly: true) }

    private static func match(_ parts: ArraySlice<Part>, _ name: ArraySlice<Character>, prefixOnly: Bool) -> Bool {
        guard let part = parts.first else { return name.isEmpty }
        if prefixOnly, name.isEmpty { return true }
        switch part {
        case .anyRun:
            var rest = name
            while true {
                if match(parts.dropFirst(), rest, prefixOnly: prefixOnly) { return true }
                guard !rest.isEmpty else { return false }
                rest = rest.dropFirst()
            }
        case .any:
            guard !name.isEmpty else { return false }
            return match(parts.dropFirst(), name.dropFirst(), prefixOnly: prefixOnly)
        case .literal(let c):
            guard name.first == c else { return false }
            return match(parts.dropFirst(), name.dropFirst(), prefixOnly: prefixOnly)
        case .set(let ranges, let negated):
            guard let c = name.first, ranges.contains(where: { $0.contains(c) }) != negated else { return false }
            return match(parts.dropFirst(), name.dropFirst(), prefixOnly: prefixOnly)
        }
    }
}

public struct GlobError: Error, Sendable {
    public var message: String
}
