import Foundation

/// One rule of `policies:` (every connection) or a connection's `policy.rules`: an effect and
/// the conditions a call must all meet for it to apply. First match wins.
struct PolicyRule: Sendable {
    enum Effect: String, Sendable { case allow, deny }

    let name: String
    let effect: Effect
    /// Globs over the connection's name (top-level rules; any when empty).
    var connections: [Glob] = []
    /// Globs over the MCP method (`tools/call`, `tools/list`, …).
    var mcpMethod: Glob?
    /// Glob over the tool's name (a `tools/call`; `tools/list` hides what it would deny).
    var tool: Glob?
    /// Glob over the REST method (upper case) and over the path after `/rest/{name}`.
    var restMethod: Glob?
    var path: Glob?
    /// Claim name → what its values must be.
    var claims: [(String, ValueMatcher)] = []
    /// JSON pointer into the tool's arguments → what the value there must be.
    var arguments: [(JSONPointer, ValueMatcher)] = []

    /// Whether a rule speaks of MCP calls (then it never matches a REST call) or of REST ones.
    var isMCPOnly: Bool { mcpMethod != nil || tool != nil || !arguments.isEmpty }
    var isRESTOnly: Bool { restMethod != nil || path != nil }
}

/// What a claim's (or an argument's) values must be. Values are strings: a scalar claim has
/// one, an array claim (`groups`) one per element; numbers and booleans are written as JSON does.
enum ValueMatcher: Sendable {
    case equals(String)
    case notEquals(String)
    case oneOf(Set<String>)
    case noneOf(Set<String>)
    case contains(String)
    case notContains(String)
    case glob(Glob)
    case regex(NSRegularExpressionBox)
    case exists(Bool)

    static let operators = ["equals", "not_equals", "in", "not_in", "contains", "not_contains", "glob", "regex", "exists"]

    /// `values`: nil when the claim (or argument) is absent.
    func matches(_ values: [String]?) -> Bool {
        switch self {
        case .exists(let wanted): return (values != nil) == wanted
        case .notEquals(let x): return !(values.map { $0 == [x] } ?? false)
        case .noneOf(let set): return !(values?.contains(where: set.contains) ?? false)
        case .notContains(let x): return !(values?.contains(x) ?? false)
        default: break
        }
        guard let values else { return false }
        switch self {
        case .equals(let x): return values == [x]
        case .oneOf(let set): return values.contains(where: set.contains)
        case .contains(let x): return values.contains(x)
        case .glob(let g): return values.contains(where: g.matches)
        case .regex(let r): return values.contains(where: r.matches)
        default: return false
        }
    }
}

/// A compiled regular expression (whole-value match), Sendable.
struct NSRegularExpressionBox: @unchecked Sendable {
    // NSRegularExpression is immutable and documented as safe to use from several threads.
    let expression: NSRegularExpression
    let pattern: String

    init(_ pattern: String) throws {
        self.pattern = pattern
        self.expression = try NSRegularExpression(pattern: "^(?:" + pattern + ")$")
    }

    func matches(_ value: String) -> Bool {
        expression.firstMatch(in: value, range: NSRange(value.startIndex..., in: value)) != nil
    }
}

/// RFC 6901 JSON pointer (`/owner`, `/repo/name`, `/items/0`; `~1` is `/`, `~0` is `~`).
struct JSONPointer: Sendable, CustomStringConvertible {
    let tokens: [String]
    let description: String

    init?(_ text: String) {
        guard text.isEmpty || text.hasPrefix("/") else { return nil }
        description = text
        tokens = text.isEmpty ? [] : text.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }
}
