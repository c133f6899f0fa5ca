import PluginAPI
import SwitchboardJSON

/// What the `/mcp` endpoint answers, method by method, for one caller in one session: lists
/// merged from every `mcp_server` connection the session may use (in parallel, each through the
/// pipeline with this user's own credential for it), and calls routed by their name's prefix
/// to one connection. A connection that fails leaves the others served; the failure is named.
struct Aggregator: Sendable {
    let proxy: ProxyHandler
    let registry: Registry
    let caller: CallerIdentity
    let session: AggregateSessions.Session
    /// Which prefixed names this session may see and call (a virtual server's globs; all when nil).
    let filter: VirtualServer?

    /// The `_meta` key naming the connections a merged answer lacks, and why.
    static let unavailableKey = "switchboard/unavailable"
    /// The `_meta` key of a routed call's failure.
    static let failureKey = "switchboard/failure"
    /// Pages read per connection for one list (a server that pages forever is cut off there).
    static let maxPages = 20

    /// The lists that fan out: method, the result's array, the field that names an item.
    enum Listing: String, CaseIterable, Sendable {
        case tools = "tools/list"
        case prompts = "prompts/list"
        case resources = "resources/list"
        case resourceTemplates = "resources/templates/list"

        var key: String {
            switch self {
            case .tools: "tools"
            case .prompts: "prompts"
            case .resources: "resources"
            case .resourceTemplates: "resourceTemplates"
            }
        }
    }

    /// The connections this session reaches: enabled MCP servers (and, on a virtual server,
    /// only those its globs can match).
    var connections: [Connection] {
        registry.connections.filter { $0.descriptor.kind == .mcpServer && $0.enabled && (filter?.mayInclude(connection: $0.name) ?? true) }
    }

    func client(_ connection: Connection) -> UpstreamMCP {
        UpstreamMCP(proxy: proxy, registry: registry, connection: connection, caller: caller, sessions: session.upstream)
    }

    // MARK: Lists

    /// One merged list: every connection's items, renamed; failures named in `_meta`.
    func list(_ listing: Listing) async -> JSONValue {
        let connections = self.connections
        let parts = await withTaskGroup(of: (Int, Result<[JSONValue], UpstreamMCP.Failure>).self) { group in
            for (index, connection) in connections.enumerated() {
                group.addTask { (index, await self.items(listing, from: connection)) }
            }
            var parts: [(Int, Result<[JSONValue], UpstreamMCP.Failure>)] = []
            for await part in group { parts.append(part) }
            return parts.sorted { $0.0 < $1.0 }
        }
        var items: [JSONValue] = []
        var unavailable: [JSONValue] = []
        for (index, outcome) in parts {
            switch outcome {
            case .success(let list): items += list
            case .failure(let failure): unavailable.append(failure.meta(connection: connections[index].name))
            }
        }
        var result: [String: JSONValue] = [listing.key: .array(items)]
        if !unavailable.isEmpty { result["_meta"] = [Self.unavailableKey: .array(unavailable)] }
        return .object(result)
    }

    /// One connection's items for `listing`, every page, renamed and filtered.
    private func items(_ listing: Listing, from connection: Connection) async -> Result<[JSONValue], UpstreamMCP.Failure> {
        let client = client(connection)
        var items: [JSONValue] = []
        var cursor: JSONValue?
        for _ in 0..<Self.maxPages {
            let answer: UpstreamMCP.Answer
            do {
                answer = try await client.request(listing.rawValue, params: cursor.map { ["cursor": $0] })
            } catch {
                return .failure(error)
            }
            relay(answer.notifications)
            if let error = answer.message["error"] {
                // A server without prompts or resources says "method not found": nothing to list.
                if error["code"]?.integer == -32601 { return .success(items) }
                return .failure(.init(code: "upstream_error", message: error["message"]?.string ?? "the server refused \(listing.rawValue)", status: 502))
            }
            let result = answer.message["result"]
            for item in result?[listing.key]?.array ?? [] {
                if let renamed = rename(item, listing, connection: connection.name) { items.append(renamed) }
            }
            guard let next = result?["nextCursor"], next != .null else { break }
            cursor = next
        }
        return .success(items)
    }

    /// An item under its merged name (and URI), or nil when this session may not see it.
    private func rename(_ item: JSONValue, _ listing: Listing, connection: String) -> JSONValue? {
        guard case .object(var fields) = item, let name = fields["name"]?.string else { return nil }
        let merged = AggregateNames.prefixed(name, connection: connection)
        if listing == .tools || listing == .prompts, let filter, !filter.includes(merged) { return nil }
        fields["name"] = .string(merged)
        if let uri = fields["uri"]?.string { fields["uri"] = .string(AggregateNames.resourceURI(uri, connection: connection)) }
        if let template = fields["uriTemplate"]?.string {
            fields["uriTemplate"] = .string(AggregateNames.resourceURI(template, connection: connection, template: true))
        }
        return .object(fields)
    }

    // MARK: Routed calls

    /// `tools/call`: the tool's server answers under the user's credential for it; a refusal
    /// (unknown tool, not on this virtual server, consent needed, server down) is a tool error
    /// a model can read, with the reason (and `interaction_uri`) in `_meta`.
    func callTool(_ params: [String: JSONValue], id: JSONValue, passThrough: Bool) async -> Outcome {
        let name = params["name"]?.string ?? ""
        guard let (connection, tool) = route(name) else {
            return .error(code: -32602, message: "unknown tool '\(name)'; see tools/list")
        }
        if let filter, !filter.includes(name) {
            return .result(Self.toolError("the tool '\(name)' is not offered on this server", meta: nil))
        }
        var forwarded = params
        forwarded["name"] = .string(tool)
        do {
            if passThrough {
                // The client's id goes upstream, so the answer is the client's as it stands.
                let relayed = try await client(connection).relay("tools/call", params: .object(forwarded), id: id)
                return .relayed(relayed)
            }
            let answer = try await client(connection).request("tools/call", params: .object(forwarded))
            relay(answer.notifications)
            return .message(answer.message, stepUp: answer.stepUp)
        } catch {
            let text: String
            if let uri = error.interactionURI {
                text = "The connection '\(connection.name)' needs the user's consent before '\(name)' can run: ask them to open \(uri) and then try again."
            } else {
                text = "The connection '\(connection.name)' could not run '\(name)': \(error.message) (\(error.code))."
            }
            return .result(Self.toolError(text, meta: error.meta(connection: connection.name)))
        }
    }

    /// `prompts/get` and `resources/read`: routed by name or URI; a failure is a JSON-RPC error.
    func routed(_ method: String, _ params: [String: JSONValue]) async -> Outcome {
        var forwarded = params
        let connection: Connection
        if method == "resources/read" {
            let uri = params["uri"]?.string ?? ""
            guard let (name, original) = AggregateNames.splitResourceURI(uri), let found = reachable(name) else {
                return .error(code: -32002, message: "unknown resource '\(uri)'; see resources/list")
            }
            connection = found
            forwarded["uri"] = .string(original)
        } else {
            let name = params["name"]?.string ?? ""
            guard let (found, prompt) = route(name), filter?.includes(name) ?? true else {
                return .error(code: -32602, message: "unknown prompt '\(name)'; see prompts/list")
            }
            connection = found
            forwarded["name"] = .string(prompt)
        }
        do {
            let answer = try await client(connection).request(method, params: .object(forwarded))
            relay(answer.notifications)
            guard method == "resources/read", let result = answer.message["result"], case .object(var fields) = result else {
                return .message(answer.message, stepUp: answer.stepUp)
            }
            // The contents name the merged URI, as the client asked for it.
            fields["contents"] = .array((fields["contents"]?.array ?? []).map { content in
                guard case .object(var c) = content, let uri = c["uri"]?.string else { return content }
                c["uri"] = .string(AggregateNames.resourceURI(uri, connection: connection.name))
                return .object(c)
            })
            return .result(.object(fields))
        } catch {
            return .error(code: -32003, message: "the connection '\(connection.name)' could not answer: \(error.message)", data: error.meta(connection: connection.name))
        }
    }

    /// What a routed method answers the client.
    enum Outcome: Sendable {
        /// The upstream's JSON-RPC message (result or error), its id to be replaced by the
        /// client's; `stepUp`: the scopes a step-up added on the way (told to the client).
        case message(JSONValue, stepUp: String?)
        case result(JSONValue)
        case error(code: Int, message: String, data: JSONValue? = nil)
        /// The upstream's answer bytes, to pass on as they are (they carry the client's id).
        case relayed(UpstreamMCP.Relayed)
    }

    /// The reachable connection a prefixed name routes to, and the upstream's own name.
    func route(_ name: String) -> (Connection, String)? {
        guard let (connection, own) = AggregateNames.split(name, known: { reachable($0) != nil }), let found = reachable(connection) else { return nil }
        return (found, own)
    }

    private func reachable(_ name: String) -> Connection? {
        guard let c = registry.byName[name], c.descriptor.kind == .mcpServer, c.enabled, filter?.mayInclude(connection: name) ?? true else { return nil }
        return c
    }

    static func toolError(_ text: String, meta: JSONValue?) -> JSONValue {
        var result: [String: JSONValue] = ["content": [["type": "text", "text": .string(text)]], "isError": true]
        if let meta { result["_meta"] = [failureKey: meta] }
        return .object(result)
    }

    /// An upstream's own list-changed notifications go on to the client's open streams.
    private func relay(_ notifications: [JSONValue]) {
        for note in notifications {
            guard let method = note["method"]?.string, method.hasSuffix("/list_changed") else { continue }
            session.notify(["jsonrpc": "2.0", "method": .string(method)])
        }
    }
}
