import SwitchboardJSON

/// What a tool name offered to the model stands for.
struct ToolBinding: Sendable {
    enum Target: Sendable {
        /// An MCP tool behind the gateway's `/mcp` (`tool`: its name there, `{connection}__{tool}`).
        case mcp(route: String, tool: String)
        /// The GitHub application behind `/rest/{name}` (its REST routes).
        case githubListRepos(route: String)
        case githubCommentOnPR(route: String)
    }

    /// The name the model sees and calls.
    var name: String
    var connection: String
    /// The connection's title (consent cards name it).
    var connectionTitle: String
    /// The server's own name of the tool.
    var tool: String
    var target: Target
    var description: String
    var inputSchema: JSONValue

    var definition: JSONValue { ["name": .string(name), "description": .string(description), "input_schema": inputSchema] }
}

/// The tools of one turn, from the gateway's registry as it is now. A tool keeps its server's
/// name unless two sources offer the same name: then each of those is `{connection}__{tool}`.
struct ToolCatalog: Sendable {
    private(set) var ordered: [ToolBinding] = []
    private var byName: [String: ToolBinding] = [:]

    subscript(name: String) -> ToolBinding? { byName[name] }
    var definitions: [JSONValue] { ordered.map(\.definition) }
    var isEmpty: Bool { ordered.isEmpty }

    /// `offers`: every (connection, tool) in the order the connections are listed.
    init(_ offers: [ToolBinding]) {
        var counts: [String: Int] = [:]
        for offer in offers { counts[Self.sanitize(offer.tool), default: 0] += 1 }
        for var offer in offers {
            let plain = Self.sanitize(offer.tool)
            var name = counts[plain, default: 0] > 1 ? Self.sanitize(offer.connection + "__" + offer.tool) : plain
            var n = 2
            while byName[name] != nil {  // still taken (a server listing one name twice): number it
                name = String(Self.sanitize(offer.connection + "__" + offer.tool).prefix(60)) + "_\(n)"
                n += 1
            }
            offer.name = name
            byName[name] = offer
            ordered.append(offer)
        }
    }

    /// The Messages API accepts `^[a-zA-Z0-9_-]{1,64}$`.
    static func sanitize(_ name: String) -> String {
        let mapped = String(name.unicodeScalars.map { s -> Character in
            (s.isASCII && (s.properties.isAlphabetic || ("0"..."9").contains(s) || s == "_" || s == "-")) ? Character(s) : "_"
        })
        let clipped = String(mapped.prefix(64))
        return clipped.isEmpty ? "tool" : clipped
    }

    /// The gateway's `/mcp` endpoint: every server's tools, each named `{connection}__{tool}`
    /// there (connection names hold no `__`). The model sees the tool's own name unless two
    /// servers offer the same one.
    static func offers(aggregated tools: [JSONValue], route: String, titles: [String: String]) -> [ToolBinding] {
        tools.compactMap { tool in
            guard let name = tool["name"]?.string, let separator = name.range(of: "__") else { return nil }
            let connection = String(name[..<separator.lowerBound])
            let own = String(name[separator.upperBound...])
            guard !connection.isEmpty, !own.isEmpty else { return nil }
            var schema = tool["inputSchema"] ?? ["type": "object", "properties": [:]]
            if schema["type"] == nil, case .object(var o) = schema { o["type"] = "object"; schema = .object(o) }
            let description = tool["description"]?.string ?? tool["title"]?.string ?? ""
            return ToolBinding(
                name: own, connection: connection, connectionTitle: titles[connection] ?? connection, tool: own, target: .mcp(route: route, tool: name),
                description: description, inputSchema: schema)
        }
    }

    /// The GitHub application (kind `application`) as two tools.
    static func githubOffers(connection: String, title: String, route: String) -> [ToolBinding] {
        [
            ToolBinding(
                name: "github_list_repos", connection: connection, connectionTitle: title, tool: "github_list_repos", target: .githubListRepos(route: route),
                description: "List the GitHub repositories of the signed-in user.",
                inputSchema: ["type": "object", "properties": [:]]),
            ToolBinding(
                name: "github_comment_on_pr", connection: connection, connectionTitle: title, tool: "github_comment_on_pr", target: .githubCommentOnPR(route: route),
                description: "Comment on a GitHub pull request as the signed-in user.",
                inputSchema: ["type": "object", "properties": [
                    "owner": ["type": "string", "description": "Repository owner, e.g. acme"],
                    "repo": ["type": "string", "description": "Repository name, e.g. widgets"],
                    "pr_number": ["type": "integer", "minimum": 1, "description": "Pull request number"],
                    "body": ["type": "string", "minLength": 1, "description": "The comment text"],
                ], "required": ["owner", "repo", "pr_number", "body"]]),
        ]
    }
}
