import SwitchboardJSON
import Synchronization

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
        /// Parsed only when a rule or the audit trail reads them.
        var arguments: JSONValue?

        init(method: String, tool: String? = nil, arguments: JSONValue? = nil) {
            (self.method, self.tool, self.arguments) = (method, tool, arguments)
        }
    }

    var connection: String
    var mcp: MCPCall?
    /// A REST call: the method (upper case) and the path after `/rest/{name}`.
    var rest: (method: String, path: String)?
    /// The caller's ID-token claims, each as its values (see ``ValueMatcher``).
    var claims: [String: [String]]
    /// Why an MCP request's body cannot be judged (not one JSON object, a batch, a member such as
    /// `params.name` given twice): the steps that judge calls refuse it rather than guess.
    var malformed: String?
    /// An MCP request's JSON-RPC id (for a refusal's answer).
    var rpcID: JSONValue?
}

/// The outcome: allowed, or refused by a rule (nil: by the connection's default).
enum PolicyDecision: Sendable, Equatable {
    case allow
    case deny(rule: String?)
}

/// A connection's rules as calls are judged by them: the registry's top-level rules that can
/// apply to it (their connection globs already decided), then its own; built once per registry
/// generation (``Registry/policy(for:)``), so a call never looks at a rule for another connection.
final class CompiledPolicy: Sendable {
    let rules: [Rule]
    let defaultEffect: PolicyRule.Effect
    /// Whether a rule looks into a tool's arguments (then a call's arguments are parsed).
    let readsArguments: Bool

    /// A rule as calls are matched against it: a class, so that walking the list per call moves
    /// one reference per rule (copying the rule struct retained each of its globs and matchers:
    /// most of the cost of 100 rules).
    final class Rule: Sendable {
        let name: String
        let effect: PolicyRule.Effect
        let mcpMethod: Glob?
        let tool: Glob?
        let restMethod: Glob?
        let path: Glob?
        let claims: [(String, ValueMatcher)]
        let arguments: [(JSONPointer, ValueMatcher)]
        let isMCPOnly: Bool
        let isRESTOnly: Bool

        init(_ r: PolicyRule) {
            (name, effect, mcpMethod, tool, restMethod, path) = (r.name, r.effect, r.mcpMethod, r.tool, r.restMethod, r.path)
            (claims, arguments, isMCPOnly, isRESTOnly) = (r.claims, r.arguments, r.isMCPOnly, r.isRESTOnly)
        }

        /// Whether the rule's conditions on the MCP method and tool hold (claims and arguments aside).
        func applies(method: String, tool callTool: String?) -> Bool {
            if isRESTOnly { return false }
            if let mcpMethod, !mcpMethod.matches(method) { return false }
            if let tool {
                guard method == "tools/call", let callTool, tool.matches(callTool) else { return false }
            }
            return true
        }

        /// Whether the rule's conditions on the REST method and path hold (claims aside).
        func applies(restMethod method: String, path callPath: String) -> Bool {
            if isMCPOnly { return false }
            if let restMethod, !restMethod.matches(method) { return false }
            if let path, !path.matches(callPath) { return false }
            return true
        }
    }

    /// The rules whose method and tool conditions hold for an MCP call, per (method, tool): a
    /// call then looks only at the rules that can concern it (100 rules on other tools cost one
    /// lookup, not 100 glob matches). Bounded: past `maxCached` pairs (a caller inventing tool
    /// names), calls are judged against every rule without being remembered.
    private let candidates = Mutex<[MCPKey: [Rule]]>([:])
    private static let maxCached = 4096

    private struct MCPKey: Hashable {
        var method: String
        var tool: String?
    }

    func rules(method: String, tool: String?) -> [Rule] {
        let key = MCPKey(method: method, tool: tool)
        if let known = candidates.withLock({ $0[key] }) { return known }
        let found = rules.filter { $0.applies(method: method, tool: tool) }
        candidates.withLock { if $0.count < Self.maxCached { $0[key] = found } }
        return found
    }

    /// Nil when nothing can refuse a call on `name` (no rule applies, the default allows).
    /// The top-level rules' connection globs are decided here, once.
    init?(global: [PolicyRule], connection: ConnectionPolicy, name: String) {
        let applying = global.filter { $0.connections.isEmpty || $0.connections.contains { $0.matches(name) } } + connection.rules
        guard !applying.isEmpty || connection.defaultEffect != .allow else { return nil }
        self.rules = applying.map(Rule.init)
        self.defaultEffect = connection.defaultEffect
        self.readsArguments = applying.contains { !$0.arguments.isEmpty }
    }
}

/// Per-call authorization: the registry's top-level rules first (guard rails for every
/// connection), then the connection's, first match wins; else the connection's default
/// (`allow` unless configured). Pure: the pipeline's ``PolicyCheck`` step asks it before any
/// credential is fetched, `/mcp` and `tools/list` ask it to hide what would be refused.
enum Policy {
    /// `listing`: whether a `tools/list` shows the tool; rules on arguments are passed over
    /// then (a tool some arguments may be called with stays listed; the call is judged as it comes).
    static func decide(_ facts: CallFacts, _ policy: CompiledPolicy, listing: Bool = false) -> PolicyDecision {
        let candidates: [CompiledPolicy.Rule]
        if let mcp = facts.mcp {
            candidates = policy.rules(method: mcp.method, tool: mcp.tool)
        } else if let rest = facts.rest {
            candidates = policy.rules.filter { $0.applies(restMethod: rest.method, path: rest.path) }
        } else {
            candidates = []
        }
        for rule in candidates where !(listing && !rule.arguments.isEmpty) && holds(rule, facts) {
            return rule.effect == .allow ? .allow : .deny(rule: rule.name)
        }
        return policy.defaultEffect == .allow ? .allow : .deny(rule: nil)
    }

    /// Whether a rule that applies to the call's method and tool (or path) holds for its caller
    /// and arguments.
    static func holds(_ rule: CompiledPolicy.Rule, _ facts: CallFacts) -> Bool {
        for (pointer, matcher) in rule.arguments where !matcher.matches(values(at: pointer, in: facts.mcp?.arguments)) { return false }
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
