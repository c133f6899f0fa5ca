import SwitchboardJSON

/// A connection's own rules and what applies when none matches (`policy:` in connections.yaml).
struct ConnectionPolicy: Sendable {
    var defaultEffect: PolicyRule.Effect = .allow
    var rules: [PolicyRule] = []
}

/// What a call is judged on: who, where, and what it asks.
struct CallFacts: Sendable {
    struct MCPCall: Sendable {
        var method: String
        /// `tools/call`'s tool.
        var tool: String?
        var arguments: JSONValue?
    }

    var connection: String
    var mcp: MCPCall?
    /// A REST call: the method (upper case) and the path after `/rest/{name}`.
    var rest: (method: String, path: String)?
    /// The caller's ID-token claims, each as its values (see ``ValueMatcher``).
    var claims: [String: [String]]
}

/// The outcome: allowed, or refused by a rule (nil: by the connection's default).
enum PolicyDecision: Sendable, Equatable {
    case allow
    case deny(rule: String?)
}

/// Per-call authorization: the registry's top-level rules first (guard rails for every
/// connection), then the connection's, first match wins; else the connection's default
/// (`allow` unless configured). Pure: the pipeline's ``PolicyCheck`` step asks it before any
/// credential is fetched, `/mcp` and `tools/list` ask it to hide what would be refused.
enum Policy {
    /// `listing`: whether a `tools/list` shows the tool; rules on arguments are passed over
    /// then (a tool some arguments may be called with stays listed; the call is judged as it comes).
    static func decide(_ facts: CallFacts, global: [PolicyRule], connection: ConnectionPolicy, listing: Bool = false) -> PolicyDecision {
        for rule in global where !(listing && !rule.arguments.isEmpty) && matches(rule, facts) {
            return rule.effect == .allow ? .allow : .deny(rule: rule.name)
        }
        for rule in connection.rules where !(listing && !rule.arguments.isEmpty) && matches(rule, facts) {
            return rule.effect == .allow ? .allow : .deny(rule: rule.name)
        }
        return connection.defaultEffect == .allow ? .allow : .deny(rule: nil)
    }

    /// Whether any rule can apply to nothing but this connection's defaults (no work on the hot path).
    static func isOpen(global: [PolicyRule], connection: ConnectionPolicy, name: String) -> Bool {
        connection.defaultEffect == .allow && connection.rules.isEmpty && !global.contains { rule in
            rule.connections.isEmpty || rule.connections.contains { $0.matches(name) }
        }
    }

    static func matches(_ rule: PolicyRule, _ facts: CallFacts) -> Bool {
        if !rule.connections.isEmpty, !rule.connections.contains(where: { $0.matches(facts.connection) }) { return false }
        if rule.isMCPOnly || rule.mcpMethod != nil {
            guard let mcp = facts.mcp else { return false }
            if let m = rule.mcpMethod, !m.matches(mcp.method) { return false }
            if let t = rule.tool {
                guard mcp.method == "tools/call", let tool = mcp.tool, t.matches(tool) else { return false }
            }
            for (pointer, matcher) in rule.arguments where !matcher.matches(values(at: pointer, in: mcp.arguments)) { return false }
        }
        if rule.isRESTOnly {
            guard let rest = facts.rest else { return false }
            if let m = rule.restMethod, !m.matches(rest.method) { return false }
            if let p = rule.path, !p.matches(rest.path) { return false }
        }
        for (claim, matcher) in rule.claims where !matcher.matches(facts.claims[claim]) { return false }
        return true
    }

    /// The values at `pointer` in a tool's arguments: a scalar's text, an array of scalars' texts;
    /// nil when absent (an object has no values, only existence).
    static func values(at pointer: JSONPointer, in arguments: JSONValue?) -> [String]? {
        guard var node = arguments else { return nil }
        for token in pointer.tokens {
            switch node {
            case .object(let o):
                guard let next = o[token] else { return nil }
                node = next
            case .array(let a):
                guard let i = Int(token), a.indices.contains(i) else { return nil }
                node = a[i]
            default:
                return nil
            }
        }
        switch node {
        case .array(let items): return items.compactMap(scalarText)
        case .object: return []
        default: return scalarText(node).map { [$0] }
        }
    }

    static func scalarText(_ v: JSONValue) -> String? {
        switch v {
        case .string(let s): return s
        case .bool(let b): return b ? "true" : "false"
        case .number(let d): return d.rounded() == d && abs(d) < 9e15 ? String(Int64(d)) : String(d)
        case .null: return "null"
        default: return nil
        }
    }
}
