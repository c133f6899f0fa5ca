import PluginAPI

/// `policies:` (top level) and each connection's `policy:`, read from the YAML nodes so that
/// every problem is reported at its line and column: an unknown key or operator, a bad glob or
/// regular expression, a JSON pointer that is not one, or a rule that can never match.
extension RegistryValidation {
    /// The top-level rules.
    mutating func policyRules(_ node: ConfigNode?, connections: [(name: String, kind: ConnectionKind)]) -> [PolicyRule] {
        guard let node else { return [] }
        guard case .sequence(let items, _) = node else {
            fail(node.location, "'policies' must be a list of rules")
            return []
        }
        return items.compactMap { rule(from: $0, kind: nil, allowConnection: true, connections: connections) }
    }

    /// A connection's `policy: {default: allow|deny, rules: [...]}`.
    mutating func connectionPolicy(_ node: ConfigNode?, connection: String, kind: ConnectionKind) -> ConnectionPolicy {
        guard let node else { return ConnectionPolicy() }
        guard case .mapping(let entries, _) = node else {
            fail(node.location, "connection '\(connection)': 'policy' must be a mapping with 'default' and 'rules'")
            return ConnectionPolicy()
        }
        var policy = ConnectionPolicy()
        for entry in entries {
            switch entry.key {
            case "default":
                guard case .scalar(let value, _, _) = entry.value, let effect = PolicyRule.Effect(rawValue: value) else {
                    fail(entry.value.location, "connection '\(connection)': policy.default must be 'allow' or 'deny'")
                    continue
                }
                policy.defaultEffect = effect
            case "rules":
                guard case .sequence(let items, _) = entry.value else {
                    fail(entry.value.location, "connection '\(connection)': policy.rules must be a list")
                    continue
                }
                policy.rules = items.compactMap { rule(from: $0, kind: kind, allowConnection: false, connections: []) }
            default:
                fail(entry.keyLocation, "connection '\(connection)': unknown key '\(entry.key)' in policy", hint: "known keys: default, rules")
            }
        }
        var names: Set<String> = []
        for rule in policy.rules where !names.insert(rule.name).inserted {
            fail(node.location, "connection '\(connection)': two policy rules are named '\(rule.name)'")
        }
        return policy
    }

    /// One rule: `{name: …, allow: {conditions}}` or `{name: …, deny: {conditions}}`.
    /// `kind`: the connection's kind for a connection's rule (a condition of the other kind
    /// can never match); nil at the top level.
    private mutating func rule(from node: ConfigNode, kind: ConnectionKind?, allowConnection: Bool, connections: [(name: String, kind: ConnectionKind)]) -> PolicyRule? {
        guard case .mapping(let entries, let at) = node else {
            fail(node.location, "a policy rule must be a mapping with 'name' and 'allow' or 'deny'")
            return nil
        }
        var name: String?
        var effect: (PolicyRule.Effect, ConfigNode)?
        for entry in entries {
            switch entry.key {
            case "name":
                guard case .scalar(let s, _, _) = entry.value, !s.isEmpty else {
                    fail(entry.value.location, "a policy rule's name must be a non-empty string")
                    continue
                }
                name = s
            case "allow", "deny":
                if effect != nil { fail(entry.keyLocation, "a policy rule has one of 'allow' or 'deny', not both") }
                effect = (PolicyRule.Effect(rawValue: entry.key)!, entry.value)
            default:
                fail(entry.keyLocation, "unknown key '\(entry.key)' in a policy rule", hint: "a rule is {name: …, allow: {…}} or {name: …, deny: {…}}")
            }
        }
        guard let name else {
            fail(at, "a policy rule needs a 'name' (denials name the rule that refused)")
            return nil
        }
        guard let (kindOfEffect, conditions) = effect else {
            fail(at, "policy rule '\(name)' needs 'allow' or 'deny'")
            return nil
        }
        var rule = PolicyRule(name: name, effect: kindOfEffect)
        let entriesOfConditions: [ConfigNode.Entry]
        switch conditions {
        case .mapping(let e, _): entriesOfConditions = e
        case .null: entriesOfConditions = []  // `deny:` alone: every call
        default:
            fail(conditions.location, "policy rule '\(name)': '\(kindOfEffect.rawValue)' must be a mapping of conditions")
            return nil
        }
        for entry in entriesOfConditions {
            let label = "policy rule '\(name)', \(entry.key)"
            switch entry.key {
            case "connection":
                guard allowConnection else {
                    fail(entry.keyLocation, "\(label): a connection's own rule cannot name connections", hint: "put the rule under 'policies:' at the top level")
                    continue
                }
                let values: [ConfigNode]
                if case .sequence(let items, _) = entry.value { values = items } else { values = [entry.value] }
                for value in values {
                    guard let glob = glob(value, label) else { continue }
                    rule.connections.append(glob)
                    if !connections.contains(where: { glob.matches($0.name) }) {
                        warn(value.location, "\(label): '\(glob)' matches no connection (yet)")
                    }
                }
            case "mcp_method": rule.mcpMethod = glob(entry.value, label)
            case "tool": rule.tool = glob(entry.value, label)
            case "rest_method":
                if case .scalar(let s, _, _) = entry.value, s.uppercased() != s {
                    fail(entry.value.location, "\(label): HTTP methods are upper case ('\(s.uppercased())')")
                }
                rule.restMethod = glob(entry.value, label)
            case "path":
                if case .scalar(let s, _, _) = entry.value, !s.hasPrefix("/"), !s.hasPrefix("*") {
                    fail(entry.value.location, "\(label): a path glob starts with '/' (the path after /rest/{name})")
                }
                rule.path = glob(entry.value, label)
            case "claims", "arguments":
                guard case .mapping(let items, _) = entry.value else {
                    fail(entry.value.location, "\(label): must be a mapping of \(entry.key == "claims" ? "claim names" : "JSON pointers") to matchers")
                    continue
                }
                for item in items {
                    guard let matcher = matcher(item.value, "\(label) '\(item.key)'") else { continue }
                    if entry.key == "claims" {
                        rule.claims.append((item.key, matcher))
                    } else if let pointer = JSONPointer(item.key), !item.key.isEmpty {
                        rule.arguments.append((pointer, matcher))
                    } else {
                        fail(item.keyLocation, "\(label): '\(item.key)' is not a JSON pointer", hint: "e.g. /owner or /repo/name")
                    }
                }
            default:
                fail(entry.keyLocation, "\(label): unknown condition", hint: "conditions: connection, mcp_method, tool, rest_method, path, claims, arguments")
            }
        }
        // Rules that can never match.
        if rule.isMCPOnly, rule.isRESTOnly {
            fail(at, "policy rule '\(name)' can never match: it names both MCP conditions (mcp_method, tool, arguments) and REST ones (rest_method, path)")
        } else if let kind, rule.isMCPOnly, kind != .mcpServer {
            fail(at, "policy rule '\(name)' can never match: it names MCP conditions on a connection of kind \(kind.rawValue)")
        } else if let kind, rule.isRESTOnly, kind != .application {
            fail(at, "policy rule '\(name)' can never match: it names REST conditions on a connection of kind \(kind.rawValue)")
        } else if let mcpMethod = rule.mcpMethod, rule.tool != nil || !rule.arguments.isEmpty, !mcpMethod.matches("tools/call") {
            fail(at, "policy rule '\(name)' can never match: 'tool' and 'arguments' apply to tools/call, which mcp_method '\(mcpMethod)' excludes")
        }
        return rule
    }

    private mutating func glob(_ node: ConfigNode, _ label: String) -> Glob? {
        guard case .scalar(let s, _, _) = node else {
            fail(node.location, "\(label): expected a glob (a string), found \(node.kindName)")
            return nil
        }
        switch Glob.parse(s) {
        case .success(let g): return g
        case .failure(let e):
            fail(node.location, "\(label): \(e.message)")
            return nil
        }
    }

    /// A scalar (equals) or `{operator: value}` with one of ``ValueMatcher/operators``.
    private mutating func matcher(_ node: ConfigNode, _ label: String) -> ValueMatcher? {
        if case .scalar(let s, _, _) = node { return .equals(s) }
        guard case .mapping(let entries, _) = node, entries.count == 1, let entry = entries.first else {
            fail(node.location, "\(label): a matcher is a value, or one {operator: value}", hint: "operators: " + ValueMatcher.operators.joined(separator: ", "))
            return nil
        }
        func scalar() -> String? {
            guard case .scalar(let s, _, _) = entry.value else {
                fail(entry.value.location, "\(label): '\(entry.key)' takes a single value")
                return nil
            }
            return s
        }
        func list() -> Set<String>? {
            guard case .sequence(let items, _) = entry.value else {
                fail(entry.value.location, "\(label): '\(entry.key)' takes a list")
                return nil
            }
            let values = items.compactMap { item -> String? in if case .scalar(let s, _, _) = item { return s } else { return nil } }
            if values.isEmpty { fail(entry.value.location, "\(label): '\(entry.key): []' can never match anything", hint: "list at least one value") }
            return Set(values)
        }
        switch entry.key {
        case "equals": return scalar().map(ValueMatcher.equals)
        case "not_equals": return scalar().map(ValueMatcher.notEquals)
        case "contains": return scalar().map(ValueMatcher.contains)
        case "not_contains": return scalar().map(ValueMatcher.notContains)
        case "in": return list().map(ValueMatcher.oneOf)
        case "not_in": return list().map(ValueMatcher.noneOf)
        case "exists":
            guard let s = scalar() else { return nil }
            guard s == "true" || s == "false" else {
                fail(entry.value.location, "\(label): 'exists' is true or false")
                return nil
            }
            return .exists(s == "true")
        case "glob":
            guard let s = scalar() else { return nil }
            switch Glob.parse(s) {
            case .success(let g): return .glob(g)
            case .failure(let e):
                fail(entry.value.location, "\(label): \(e.message)")
                return nil
            }
        case "regex":
            guard let s = scalar() else { return nil }
            do { return .regex(try NSRegularExpressionBox(s)) } catch {
                fail(entry.value.location, "\(label): '\(s)' is not a valid regular expression")
                return nil
            }
        default:
            fail(entry.keyLocation, "\(label): unknown operator '\(entry.key)'", hint: "operators: " + ValueMatcher.operators.joined(separator: ", "))
            return nil
        }
    }
}
