import Foundation
import PluginAPI

/// The semantic checks of a decoded connections.yaml. Collects every problem it finds.
struct RegistryValidation {
    let file: String
    let root: ConfigNode
    let plugins: PluginRegistry
    let decoder: ConfigDecoder
    let environment: [String: String]
    var errors: [ConfigError] = []
    /// What is allowed but likely a mistake; logged when the file is loaded.
    var warnings: [String] = []

    static let supportedAlgorithms: Set<String> = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]

    init(file: String, root: ConfigNode, plugins: PluginRegistry, decoder: ConfigDecoder, environment: [String: String]) {
        self.file = file
        self.root = root
        self.plugins = plugins
        self.decoder = decoder
        self.environment = environment
    }

    mutating func fail(_ at: SourceLocation?, _ message: String, hint: String? = nil) {
        errors.append(ConfigError(file: file, location: at, message: message, hint: hint))
    }

    mutating func warn(_ at: SourceLocation?, _ message: String) {
        warnings.append(message + (at.map { " (\(file):\($0.line):\($0.column))" } ?? ""))
    }

    /// Location of `key` (its value) under the top-level mapping path, e.g. ["users", "issuer"].
    func location(_ path: [String]) -> SourceLocation? {
        var node = root
        for key in path {
            guard let e = node.entry(key) else { return node.location }
            node = e.value
        }
        return node.location
    }

    func connectionNode(_ index: Int) -> ConfigNode? {
        guard case .sequence(let items, _)? = root.entry("connections")?.value, index < items.count else { return nil }
        return items[index]
    }

    func location(connection index: Int, key: String) -> SourceLocation? {
        guard let node = connectionNode(index) else { return nil }
        return node.entry(key)?.value.location ?? node.location
    }

    mutating func validate(_ config: RegistryFileConfig) -> RegistryPlan {
        if config.version != 1 {
            fail(location(["version"]), "unsupported version \(config.version)", hint: "this gateway reads 'version: 1'")
        }
        if let message = URLCheck.problem(config.users.issuer) {
            fail(location(["users", "issuer"]), "users.issuer: \(message)")
        }
        if config.users.audience.isEmpty { fail(location(["users", "audience"]), "users.audience is empty", hint: "set it to the agent's OIDC client id") }
        if let jwks = config.users.jwksURI, let message = URLCheck.problem(jwks) {
            fail(location(["users", "jwks_uri"]), "users.jwks_uri: \(message)")
        }
        for alg in config.users.algorithms ?? [] where !Self.supportedAlgorithms.contains(alg) {
            fail(location(["users", "algorithms"]), "algorithm '\(alg)' is not supported",
                hint: "use some of \(Self.supportedAlgorithms.sorted().joined(separator: ", ")); 'none' and HS* are never accepted")
        }
        if config.users.algorithms?.isEmpty == true { fail(location(["users", "algorithms"]), "users.algorithms is empty") }
        var settings = GatewaySettings(config.gateway)
        if settings.maxHeaderCount < 1 { fail(location(["gateway", "limits", "max_header_count"]), "must be at least 1"); settings.maxHeaderCount = 1 }
        if settings.maxConnectionsPerUpstream < 1 {
            fail(location(["gateway", "limits", "max_connections_per_upstream"]), "must be at least 1")
        }
        if settings.maxInboundConnections < 1 {
            fail(location(["gateway", "limits", "max_inbound_connections"]), "must be at least 1")
        }
        for (key, value) in [("client_header", settings.clientHeaderTimeout), ("client_body", settings.clientBodyTimeout), ("keepalive", settings.keepaliveTimeout)]
        where value <= .zero {
            fail(location(["gateway", "timeouts", key]), "must be more than 0", hint: "the caller's side is always timed; e.g. 60s")
        }
        if settings.watchInterval < .milliseconds(50) { fail(location(["gateway", "reload", "interval"]), "must be at least 50ms") }
        if let state = settings.state {
            let scheme = state.url.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
            if !["postgres", "postgresql"].contains(scheme) || URLComponents(string: state.url)?.host?.isEmpty != false {
                fail(location(["gateway", "state"]), "'\(scheme)' is not a state store this gateway knows", hint: "write postgres://user@host:5432/database")
            }
            if state.keys.isEmpty {
                fail(location(["gateway", "state"]), "a shared state needs gateway.state_key", hint: "state_key: file:/path/to/key (32 random bytes or more, e.g. from `openssl rand -base64 48`)")
            }
            for (i, key) in state.keys.enumerated() where key.reveal().utf8.count < 32 {
                fail(location(["gateway", "state_key"] + (state.keys.count > 1 ? ["\(i)"] : [])), "a state key must be at least 32 characters (it is \(key.source))",
                     hint: "e.g. `openssl rand -base64 48 > state.key`")
            }
        }

        let agent = config.agent.map { AgentIdentity(id: $0.id, keyID: $0.keyID, privateKey: $0.privateKey) }
        let disabled = DisabledConnections(environment["DISABLED_CONNECTIONS"] ?? "")

        // Pass 1: descriptors, names, routes.
        var planned: [RegistryPlan.PlannedConnection] = []
        var names: [String: Int] = [:]
        var routes: [String: String] = [:]
        for (i, c) in config.connections.enumerated() {
            let thisNode = self.connectionNode(i)
            let at = { (key: String) -> SourceLocation? in thisNode?.entry(key)?.value.location ?? thisNode?.location }
            if !ConnectionName.isValid(c.name) {
                fail(at("name"), "'\(c.name)' is not a valid connection name", hint: "use 1-63 characters: a-z, 0-9, '-', '_', starting with a letter or digit")
            } else if c.name.contains(AggregateNames.separator) {
                fail(at("name"), "connection name '\(c.name)' contains '__'", hint: "'__' separates the connection from the tool name at /mcp")
            }
            if let first = names[c.name] {
                fail(at("name"), "duplicate connection name '\(c.name)' (first at line \(location(connection: first, key: "name")?.line ?? 0))",
                    hint: "names must be unique")
            } else {
                names[c.name] = i
            }
            guard let kind = ConnectionKind(rawValue: c.kind) else {
                fail(at("kind"), "unknown kind '\(c.kind)' for connection '\(c.name)'",
                    hint: "use one of: \(ConnectionKind.allCases.map(\.rawValue).joined(separator: ", "))")
                continue
            }
            var descriptor = ConnectionDescriptor(name: c.name, kind: kind, title: c.title ?? c.name, registrationID: c.registrationID.flatMap { $0.isEmpty ? nil : $0 })
            switch kind {
            case .authorizationServer:
                if let issuer = c.issuer {
                    if let m = URLCheck.problem(issuer) { fail(at("issuer"), "connection '\(c.name)': issuer \(m)") }
                    descriptor.issuer = issuer
                } else {
                    fail(at("name"), "connection '\(c.name)' (authorization_server) needs 'issuer'", hint: "add 'issuer: https://…'")
                }
                for key in ["upstream", "route", "auth", "resource"] where connectionNode(i)?.entry(key) != nil {
                    fail(at(key), "'\(key)' does not apply to an authorization_server", hint: "remove it")
                }
            case .application, .mcpServer:
                if let upstream = c.upstream {
                    if let m = URLCheck.problem(upstream) { fail(at("upstream"), "connection '\(c.name)': upstream \(m)") }
                    descriptor.upstream = upstream
                } else {
                    fail(at("name"), "connection '\(c.name)' needs 'upstream'", hint: "add 'upstream: http://host:port/…'")
                }
                if c.issuer != nil { fail(at("issuer"), "'issuer' applies only to an authorization_server", hint: "remove it") }
                if let resource = c.resource {
                    if resource.isEmpty || resource.contains(where: \.isWhitespace) || resource.contains("#") {
                        fail(at("resource"), "resource indicator '\(resource)' must be a URI without spaces or fragment")
                    }
                }
                descriptor.resourceIndicator = c.resource ?? c.upstream
                let prefix = kind == .mcpServer ? "/mcp/" : "/rest/"
                let route = c.route ?? prefix + c.name
                if !route.hasPrefix(prefix) || !RouteSegment.isValid(String(route.dropFirst(prefix.count))) {
                    fail(at("route"), "route '\(route)' must be '\(prefix)<segment>' for a \(kind.rawValue)",
                        hint: "a segment uses A-Z a-z 0-9 . _ ~ -")
                } else if route == "/mcp/v" {
                    fail(at(c.route == nil ? "name" : "route"), "route '/mcp/v' is the gateway's own (virtual servers at /mcp/v/{name})", hint: "set a different 'route'")
                } else if let owner = routes[route] {
                    fail(at(c.route == nil ? "name" : "route"), "route '\(route)' is already used by connection '\(owner)'", hint: "set a different 'route'")
                } else {
                    routes[route] = c.name
                }
                descriptor.route = route
                if c.auth == nil {
                    fail(at("name"), "connection '\(c.name)' needs an 'auth' block",
                        hint: "add 'auth: { strategy: … }' (available: \(plugins.ids.joined(separator: ", ")))")
                }
            }
            if let t = c.timeouts, t.setsGatewayWideKeys {
                fail(at("timeouts"), "only 'timeouts.response' can be set per connection",
                     hint: "set connect, idle, client_header, client_body and keepalive under gateway.timeouts")
            }
            let reason: String? = c.enabled == false ? "disabled in config" : disabled.reason(name: c.name, kind: kind)
            planned.append(.init(
                descriptor: descriptor, enabled: reason == nil, disabledReason: reason, strategy: nil, factory: nil,
                responseTimeout: c.timeouts?.response?.duration, maxRequestBody: c.maxRequestBody?.bytes))
        }

        // Pass 2: each plugin validates its auth block, with every descriptor visible.
        let byName = Dictionary(planned.map { ($0.descriptor.name, $0.descriptor) }, uniquingKeysWith: { a, _ in a })
        let lookup: @Sendable (String) -> ConnectionDescriptor? = { byName[$0] }
        var plannedIndex = 0
        for c in config.connections {
            guard ConnectionKind(rawValue: c.kind) != nil else { continue }
            defer { plannedIndex += 1 }
            guard let auth = c.auth, planned[plannedIndex].descriptor.kind != .authorizationServer else { continue }
            guard case .mapping = auth else {
                fail(auth.location, "'auth' must be a mapping with a 'strategy' key")
                continue
            }
            guard let strategyEntry = auth.entry("strategy"), case .scalar(let strategyID, _, let strategyLoc) = strategyEntry.value else {
                fail(auth.location, "connection '\(c.name)': 'auth' needs 'strategy'", hint: "available: \(plugins.ids.joined(separator: ", "))")
                continue
            }
            guard let factory = plugins.factory(id: strategyID) else {
                fail(strategyLoc, "connection '\(c.name)': no auth-strategy plugin named '\(strategyID)'",
                    hint: "available: \(plugins.ids.joined(separator: ", "))")
                continue
            }
            let params = auth.removing(key: "strategy")
            let context = ValidationContext(connection: planned[plannedIndex].descriptor, agent: agent, lookup: lookup)
            do {
                planned[plannedIndex].strategy = try factory.prepare(params, decoder: decoder, context: context)
                planned[plannedIndex].factory = factory
            } catch let error as ConfigError {
                var e = error
                e.message = "connection '\(c.name)', strategy '\(strategyID)': " + e.message
                errors.append(e)
            } catch let error as PluginConfigError {
                let loc = error.key.flatMap { params.entry($0)?.value.location } ?? auth.location
                fail(loc, "connection '\(c.name)', strategy '\(strategyID)': \(error.message)", hint: error.hint)
            } catch {
                fail(auth.location, "connection '\(c.name)', strategy '\(strategyID)': \(error)")
            }
        }
        var plan = RegistryPlan(file: file, settings: settings, agent: agent, users: config.users, connections: planned)
        validateVirtualServers(config, into: &plan)
        let kinds = planned.map { (name: $0.descriptor.name, kind: $0.descriptor.kind) }
        plan.policies = policyRules(root.entry("policies")?.value, connections: kinds)
        var policyIndex = 0  // (as above: planned connections are the ones of a known kind, in order)
        for (i, c) in config.connections.enumerated() where ConnectionKind(rawValue: c.kind) != nil {
            defer { policyIndex += 1 }
            guard policyIndex < plan.connections.count else { continue }
            let kind = plan.connections[policyIndex].descriptor.kind
            if let limits = c.rateLimits {
                plan.connections[policyIndex].rateLimits = rateLimits(limits, connection: c.name, kind: kind, node: connectionNode(i)?.entry("rate_limits")?.value)
                plan.connections[policyIndex].rateLimitConfigs = limits
            }
            if let audit = c.audit, audit.arguments == true {
                if kind != .mcpServer { fail(connectionNode(i)?.entry("audit")?.value.location, "connection '\(c.name)': only an MCP connection's calls have tool arguments to keep") }
                plan.connections[policyIndex].auditArgumentsRedacting = Set(audit.redact ?? [])
            }
            guard let node = connectionNode(i)?.entry("policy")?.value else { continue }
            plan.connections[policyIndex].policy = connectionPolicy(node, connection: c.name, kind: kind)
            plan.connections[policyIndex].policyNode = node
        }
        plan.warnings += warnings
        return plan
    }

    /// `virtual_servers:`: unique valid names, globs that parse; a glob whose connection part
    /// can match no MCP connection is a warning (it may be added later).
    mutating func validateVirtualServers(_ config: RegistryFileConfig, into plan: inout RegistryPlan) {
        let servers = config.virtualServers ?? []
        var seen: Set<String> = []
        let mcp = plan.connections.filter { $0.descriptor.kind == .mcpServer }.map(\.descriptor.name)
        for (index, server) in servers.enumerated() {
            let node: ConfigNode? = {
                guard case .sequence(let items, _)? = root.entry("virtual_servers")?.value, index < items.count else { return nil }
                return items[index]
            }()
            func at(_ key: String) -> SourceLocation? { node?.entry(key)?.value.location ?? node?.location }
            guard ConnectionName.isValid(server.name) else {
                fail(at("name"), "virtual server name '\(server.name)' is invalid", hint: "lowercase letters, digits, '-' and '_', starting with a letter or digit")
                continue
            }
            guard seen.insert(server.name).inserted else {
                fail(at("name"), "virtual server '\(server.name)' is defined twice")
                continue
            }
            var globs: [String: [Glob]] = ["include": [], "exclude": []]
            for (key, patterns) in [("include", server.include), ("exclude", server.exclude ?? [])] {
                let items: [ConfigNode] = {
                    guard case .sequence(let items, _)? = node?.entry(key)?.value else { return [] }
                    return items
                }()
                for (i, pattern) in patterns.enumerated() {
                    let location = i < items.count ? items[i].location : at(key)
                    switch Glob.parse(pattern) {
                    case .failure(let error):
                        fail(location, "virtual server '\(server.name)', \(key): \(error.message)")
                    case .success(let glob):
                        globs[key, default: []].append(glob)
                        if key == "include", !mcp.contains(where: { glob.mayMatch(prefix: $0 + AggregateNames.separator) }) {
                            warn(location, "virtual server '\(server.name)': include '\(pattern)' matches no MCP connection's tools")
                        }
                    }
                }
            }
            if server.include.isEmpty { fail(at("include"), "virtual server '\(server.name)' includes nothing", hint: "list globs such as 'todo0__*'") }
            plan.virtualServers.append(VirtualServer(name: server.name, title: server.title, include: globs["include"] ?? [], exclude: globs["exclude"] ?? []))
        }
    }
}

/// `DISABLED_CONNECTIONS=kind,…|name,…`: a comma (or `|`) separated list of kinds and names.
struct DisabledConnections {
    let items: Set<String>
    init(_ text: String) {
        items = Set(text.split(whereSeparator: { $0 == "," || $0 == "|" }).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
    }
    func reason(name: String, kind: ConnectionKind) -> String? {
        if items.contains(name) { return "disabled by DISABLED_CONNECTIONS (name)" }
        if items.contains(kind.rawValue) { return "disabled by DISABLED_CONNECTIONS (kind \(kind.rawValue))" }
        return nil
    }
}

enum ConnectionName {
    static func isValid(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, s.unicodeScalars.count <= 63 else { return false }
        let lowerOrDigit: (Unicode.Scalar) -> Bool = { ("a"..."z").contains($0) || ("0"..."9").contains($0) }
        return lowerOrDigit(first) && s.unicodeScalars.allSatisfy { lowerOrDigit($0) || $0 == "-" || $0 == "_" }
    }
}

enum RouteSegment {
    static func isValid(_ s: String) -> Bool {
        !s.isEmpty && s != "." && s != ".." && s.unicodeScalars.count <= 128
            && s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "-._~".unicodeScalars.contains($0) }
    }
}

enum URLCheck {
    /// Nil when `s` is an absolute http(s) URL without credentials, query or fragment.
    static func problem(_ s: String) -> String? {
        guard let c = URLComponents(string: s), let scheme = c.scheme?.lowercased() else { return "'\(s)' is not a URL" }
        guard scheme == "http" || scheme == "https" else { return "'\(s)' must use http or https" }
        guard let host = c.host, !host.isEmpty else { return "'\(s)' has no host" }
        if c.user != nil || c.password != nil { return "'\(s)' must not carry credentials; use an auth strategy" }
        if c.query != nil { return "'\(s)' must not have a query string" }
        if c.fragment != nil { return "'\(s)' must not have a fragment" }
        if let port = c.port, !(1...65535).contains(port) { return "'\(s)' has an invalid port" }
        return nil
    }
}
