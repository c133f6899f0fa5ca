import PluginAPI

/// A connection's `rate_limits:`, checked: positive counts and intervals, known key parts, a
/// tool glob only where there are tools, names unique; each problem at its line and column.
extension RegistryValidation {
    mutating func rateLimits(_ configs: [RateLimitConfig], connection: String, kind: ConnectionKind, node: ConfigNode?) -> [RateLimit] {
        let items: [ConfigNode] = {
            guard case .sequence(let items, _)? = node else { return [] }
            return items
        }()
        var names: Set<String> = []
        var out: [RateLimit] = []
        for (index, config) in configs.enumerated() {
            let item = index < items.count ? items[index] : node
            func at(_ key: String) -> SourceLocation? { item?.entry(key)?.value.location ?? item?.location }
            let label = "connection '\(connection)', rate limit '\(config.name)'"
            var ok = true
            if config.name.isEmpty || !names.insert(config.name).inserted {
                fail(at("name"), "\(label): rate limit names must be non-empty and unique")
                ok = false
            }
            if config.requests < 1 { fail(at("requests"), "\(label): 'requests' must be at least 1"); ok = false }
            if config.per.duration <= .zero { fail(at("per"), "\(label): 'per' must be longer than zero"); ok = false }
            if let burst = config.burst, burst < 1 { fail(at("burst"), "\(label): 'burst' must be at least 1"); ok = false }
            let key = config.key ?? ["user"]
            for part in key where part != "user" && part != "tool" {
                fail(at("key"), "\(label): unknown key part '\(part)'", hint: "key parts: user, tool")
                ok = false
            }
            if kind != .mcpServer, key.contains("tool") || config.tool != nil {
                fail(at(config.tool != nil ? "tool" : "key"), "\(label): only an MCP connection's calls have a tool")
                ok = false
            }
            var glob: Glob?
            if let tool = config.tool {
                switch Glob.parse(tool) {
                case .success(let g): glob = g
                case .failure(let e):
                    fail(at("tool"), "\(label): \(e.message)")
                    ok = false
                }
            }
            guard ok else { continue }
            out.append(RateLimit(
                name: config.name, requests: config.requests, interval: config.per.duration, burst: config.burst ?? config.requests,
                perUser: key.contains("user"), perTool: key.contains("tool"), tool: glob))
        }
        return out
    }
}
