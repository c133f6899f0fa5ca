public import AsyncHTTPClient
import Foundation
import OAuthCore
import SwitchboardJSON

/// `switchboard okta bootstrap`: creates through the Management API what the system needs at
/// an Okta org (or the development IdP) — the custom authorization server and its scopes, the
/// OIDC web app for agent0 (and todo0's when asked) assigned to the token's user, the agent's
/// key pair, the AI agent with that public key, activated, its managed connection to the
/// server (and, when asked, to GitHub's resource server connector through OAuth STS), the access policy and rule for the JWT-bearer grant, trusted origins — then writes
/// the values connections.yaml and agent0 read into an env file (mode 600).
///
/// Safe to re-run: an object recorded in the state file that still exists, or found by name,
/// is reused, not duplicated. The state file is written after each step, so a failure leaves
/// it describing what exists (and `okta rollback` can remove it).
public struct OktaBootstrap: Sendable {
    public struct Options: Sendable {
        public var org: String
        public var token: String
        public var statePath = ".switchboard/okta-state.json"
        public var envPath = ".switchboard/okta.env"
        public var keyPath = ".switchboard/okta-agent-key.pem"
        public var authorizationServerName = "todo-mcp"
        /// todo0's resource indicator: the server's audience and the connection's resource.
        public var resource = "http://127.0.0.1:5002/mcp"
        public var scopes = ["mcp:connect", "mcp:tools:read", "mcp:tools:manage"]
        public var tokenLifetimeMinutes = 60
        public var agent0URL = "http://127.0.0.1:3000"
        /// todo0's web sign-in (its REST UI); nil: no app for todo0.
        public var todo0URL: String?
        public var agentName = "Switchboard agent0"
        /// Assign the apps to this group instead of the token's user (`users/me`).
        public var group: String?
        /// Connect the agent through OAuth STS to this app's resource server connector (its
        /// name or id, e.g. `GitHub`): the `oauth-sts` connections' resource. Nil: not asked.
        public var githubApp: String?

        public init(org: String, token: String) {
            self.org = org
            self.token = token
        }
    }

    /// One line of the report: what, its id, and whether it was created or already there.
    public struct Step: Sendable, Equatable {
        public var object: String
        public var id: String
        public var created: Bool
    }

    let options: Options
    let client: OktaClient

    public init(options: Options, httpClient: HTTPClient) {
        self.options = options
        self.client = OktaClient(org: options.org, token: options.token, httpClient: httpClient)
    }

    static let jwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    static let tokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

    public func run() async throws -> [Step] {
        var state = try OktaState.load(options.statePath) ?? OktaState(org: client.org)
        guard state.org == client.org else {
            throw OktaToolError("\(options.statePath) describes \(state.org), not \(client.org): use another --state file")
        }
        var steps: [Step] = []
        func note(_ object: String, _ id: String, created: Bool) throws {
            steps.append(Step(object: object, id: id, created: created))
            try state.save(options.statePath)
        }

        // 1. The authorization server and its scopes.
        let serverName = options.authorizationServerName
        let server = try await adopt(
            recorded: state.authorizationServerID.map { "/api/v1/authorizationServers/\($0)" },
            list: "/api/v1/authorizationServers?q=\(Self.query(serverName))", matching: { $0["name"]?.string == serverName },
            what: "authorization server '\(serverName)'"
        ) {
            try await client.call(.POST, "/api/v1/authorizationServers", body: [
                "name": .string(serverName), "description": "Issues access tokens for todo0's MCP tools (Switchboard)",
                "audiences": [.string(options.resource)],
            ], what: "authorization server '\(serverName)'").body
        }
        let serverID = try Self.id(server.object, "authorization server")
        state.authorizationServerID = serverID
        try note("authorization server \(serverName)", serverID, created: server.created)
        let existingScopes = try await client.call(.GET, "/api/v1/authorizationServers/\(serverID)/scopes", what: "scopes of \(serverName)").items
        for scope in options.scopes {
            if let found = existingScopes.first(where: { $0["name"]?.string == scope }), let id = found["id"]?.string {
                state.scopeIDs[scope] = id
                try note("scope \(scope)", id, created: false)
                continue
            }
            let made = try await client.call(.POST, "/api/v1/authorizationServers/\(serverID)/scopes", body: [
                "name": .string(scope), "displayName": .string(scope), "description": .string("\(scope) on todo0"), "consent": "IMPLICIT",
            ], what: "scope '\(scope)'").body
            state.scopeIDs[scope] = try Self.id(made, "scope '\(scope)'")
            try note("scope \(scope)", state.scopeIDs[scope] ?? "", created: true)
        }

        // 2. The web apps, assigned to the token's user or to the group given.
        let member: Member
        if let group = options.group {
            let found = try await client.call(.GET, "/api/v1/groups?q=\(Self.query(group))", what: "group '\(group)'").items
            guard let match = found.first(where: { $0["profile"]?["name"]?.string == group }) else {
                throw OktaToolError("group '\(group)': no group of that name at \(client.org)")
            }
            member = .group(try Self.id(match, "group '\(group)'"))
        } else {
            member = .user(try Self.id(try await client.call(.GET, "/api/v1/users/me", what: "the signed-in admin (users/me)").body, "users/me"))
        }
        let agent0 = try await webApp(label: "agent0", base: options.agent0URL, recorded: state.agent0AppID)
        let agent0ID = try Self.id(agent0.object, "app agent0")
        state.agent0AppID = agent0ID
        state.agent0ClientID = agent0.object?["credentials"]?["oauthClient"]?["client_id"]?.string
        try note("OIDC web app agent0", agent0ID, created: agent0.created)
        try await assign(member, to: agent0ID, state: &state)
        var todo0ClientID: String?
        if let todo0URL = options.todo0URL {
            let todo0 = try await webApp(label: "todo0", base: todo0URL, recorded: state.todo0AppID)
            let id = try Self.id(todo0.object, "app todo0")
            state.todo0AppID = id
            todo0ClientID = todo0.object?["credentials"]?["oauthClient"]?["client_id"]?.string
            try note("OIDC web app todo0", id, created: todo0.created)
            try await assign(member, to: id, state: &state)
        }

        // 3. The agent's key pair: reused while its file is there.
        let key: SigningKey
        var keyCreated = false
        // Its kid is its RFC 7638 thumbprint, so a key file replaced by another key is registered
        // anew rather than taken for the one recorded.
        if let pem = try? String(contentsOfFile: options.keyPath, encoding: .utf8), let loaded = try? SigningKey(pem: pem, kid: "") {
            key = try SigningKey(pem: pem, kid: loaded.thumbprint)
            keyCreated = key.kid != state.agentKeyID
        } else {
            let fresh = try SigningKey.generateRSA(kid: "pending")
            key = try SigningKey(pem: fresh.pemRepresentation, kid: fresh.thumbprint)
            try key.writePrivateKey(to: options.keyPath)
            keyCreated = true
        }
        state.agentKeyID = key.kid
        state.agentKeyFile = options.keyPath
        try note("agent key pair (\(options.keyPath), mode 600)", key.kid, created: keyCreated)

        // 4. The AI agent: registered (asynchronous), its public key, activated.
        let agentsPath = "/workload-principals/api/v1/ai-agents"
        var agentObject: JSONValue?
        if let id = state.agentID { agentObject = try await client.find("\(agentsPath)/\(id)", what: "AI agent \(id)") }
        var agentCreated = false
        if agentObject == nil {
            let listed = try await client.call(.GET, agentsPath, what: "AI agents").items
            agentObject = listed.first { $0["profile"]?["name"]?.string == options.agentName && $0["appId"]?.string == agent0ID }
        }
        if agentObject == nil {
            let op = try await client.operation(.POST, agentsPath, body: [
                "profile": ["name": .string(options.agentName), "description": "The agent the Switchboard gateway acts as"], "appId": .string(agent0ID),
            ], what: "AI agent '\(options.agentName)'")
            let id = try Self.id(op["resource"], "the AI agent's registration")
            agentObject = try await client.call(.GET, "\(agentsPath)/\(id)", what: "AI agent \(id)").body
            agentCreated = true
        }
        let agentID = try Self.id(agentObject, "AI agent")
        state.agentID = agentID
        try note("AI agent \(options.agentName)", agentID, created: agentCreated)
        let keys = try await client.call(.GET, "\(agentsPath)/\(agentID)/credentials/jwks", what: "the AI agent's keys").items
        if !keys.contains(where: { $0["kid"]?.string == key.kid }) {
            var jwk: [String: JSONValue] = [:]
            for (name, value) in key.publicJWK { jwk[name] = .string(value) }
            _ = try await client.call(.POST, "\(agentsPath)/\(agentID)/credentials/jwks", body: .object(jwk), what: "the AI agent's public key")
            try note("the agent's public key", key.kid, created: true)
        }
        if agentObject?["status"]?.string != "ACTIVE" {
            _ = try await client.operation(.POST, "\(agentsPath)/\(agentID)/lifecycle/activate", body: [:], what: "activating the AI agent")
        }

        // 5. The managed connection from the agent to the authorization server.
        let orgID = try Self.id(try await client.call(.GET, "/api/v1/org", what: "the org").body, "org")
        let serverORN = "orn:okta:idp:\(orgID):authorization_servers:\(serverID)"
        let connectionsPath = "\(agentsPath)/\(agentID)/connections"
        let connections = try await client.call(.GET, connectionsPath, what: "the AI agent's connections").items
        if let found = connections.first(where: {
            $0["id"]?.string == state.connectionID
                || ($0["authorizationServer"]?["orn"]?.string == serverORN && $0["resourceIndicator"]?.string == options.resource)
        }) {
            state.connectionID = try await reuse(connection: found, in: connectionsPath, what: "managed connection to '\(serverName)'")
            try note("managed connection to \(serverName)", state.connectionID ?? "", created: false)
        } else {
            let made = try await client.call(.POST, connectionsPath, body: [
                "connectionType": "IDENTITY_ASSERTION_CUSTOM_AS", "authorizationServer": ["orn": .string(serverORN)],
                "resourceIndicator": .string(options.resource), "scopeCondition": "INCLUDE_ONLY", "scopes": .array(options.scopes.map { .string($0) }),
            ], what: "managed connection to '\(serverName)'").body
            state.connectionID = try Self.id(made, "managed connection")
            try note("managed connection to \(serverName)", state.connectionID ?? "", created: true)
        }

        // 5b. When asked: the managed connection through OAuth STS to an app's resource server
        // connector (GitHub's, for the `oauth-sts` connections). The app and its connector (the
        // GitHub OAuth app's client id and secret) are set up in the Admin Console: Okta's API
        // offers no call for them.
        var stsResource: String?
        if let appName = options.githubApp {
            let sts = "STS_ACCESS_TOKEN"
            let filter = Self.query("connectionType eq \"\(sts)\"")
            let potential = try await client.call(
                .GET, "/workload-principals/api/v1/potential-connections?filter=\(filter)", what: "the apps the agent can reach through STS (potential connections)"
            ).items
            guard let target = potential.first(where: {
                $0["resource"]?["appInstanceId"]?.string == appName || $0["resource"]?["appInstanceName"]?.string?.lowercased() == appName.lowercased()
            }), let appID = target["resource"]?["appInstanceId"]?.string else {
                let offered = potential.compactMap { $0["resource"]?["appInstanceName"]?.string }
                throw OktaToolError("""
                    app '\(appName)': no app of that name at \(client.org) has a resource server connector the agent can reach through STS \
                    (offered: \(offered.isEmpty ? "none" : offered.joined(separator: ", "))). In the Admin Console add the app, open its \
                    Resource server tab, enter the client ID and secret of your GitHub OAuth app and save; then run bootstrap again
                    """)
            }
            let what = "managed connection to '\(appName)' (STS)"
            if let found = connections.first(where: {
                $0["id"]?.string == state.githubConnectionID || ($0["connectionType"]?.string == sts && $0["resource"]?["appInstanceId"]?.string == appID)
            }) {
                state.githubConnectionID = try await reuse(connection: found, in: connectionsPath, what: what)
                stsResource = found["resourceIndicator"]?.string ?? found["resource"]?["orn"]?.string
                try note("managed connection to \(appName) (STS)", state.githubConnectionID ?? "", created: false)
            } else {
                let made = try await client.call(.POST, connectionsPath, body: [
                    "connectionType": .string(sts),
                    "resource": ["appInstanceId": .string(appID), "clientAuthSettings": ["orn": target["resource"]?["clientAuthSettings"]?["orn"] ?? .null]],
                ], what: what).body
                state.githubConnectionID = try Self.id(made, what)
                stsResource = made?["resourceIndicator"]?.string ?? made?["resource"]?["orn"]?.string
                try note("managed connection to \(appName) (STS)", state.githubConnectionID ?? "", created: true)
            }
            guard let resource = stsResource ?? target["resourceIndicator"]?.string ?? target["resource"]?["orn"]?.string else {
                throw OktaToolError("\(what): the API names no resource indicator for it")
            }
            stsResource = resource
        }

        // 6. The access policy and its rule: the agent may use the JWT-bearer grant for the scopes.
        let policiesPath = "/api/v1/authorizationServers/\(serverID)/policies"
        let policyName = "Switchboard agent access"
        let policy = try await adopt(
            recorded: state.policyID.map { "\(policiesPath)/\($0)" }, list: policiesPath, matching: { $0["name"]?.string == policyName },
            what: "access policy '\(policyName)'"
        ) {
            try await client.call(.POST, policiesPath, body: [
                "name": .string(policyName), "description": "Lets the Switchboard agent get access tokens for todo0", "priority": 1,
                "type": "OAUTH_AUTHORIZATION_POLICY", "conditions": ["clients": ["include": [.string(agentID)]]],
            ], what: "access policy '\(policyName)'").body
        }
        let policyID = try Self.id(policy.object, "access policy")
        state.policyID = policyID
        try note("access policy \(policyName)", policyID, created: policy.created)
        let ruleName = "Allow the agent's JWT-bearer grant"
        let rule = try await adopt(
            recorded: nil, list: "\(policiesPath)/\(policyID)/rules", matching: { $0["name"]?.string == ruleName }, what: "policy rule '\(ruleName)'"
        ) {
            try await client.call(.POST, "\(policiesPath)/\(policyID)/rules", body: [
                "name": .string(ruleName), "priority": 1, "type": "RESOURCE_ACCESS",
                "conditions": [
                    "grantTypes": ["include": [.string(Self.jwtBearer), .string(Self.tokenExchange)]],
                    "people": ["groups": ["include": ["EVERYONE"]]], "scopes": ["include": .array(options.scopes.map { .string($0) })],
                ],
                "actions": ["token": ["accessTokenLifetimeMinutes": .number(Double(options.tokenLifetimeMinutes))]],
            ], what: "policy rule '\(ruleName)'").body
        }
        state.ruleID = try Self.id(rule.object, "policy rule")
        try note("policy rule \(ruleName)", state.ruleID ?? "", created: rule.created)

        // 7. Trusted origins for agent0 and todo0, when absent.
        let origins = try await client.call(.GET, "/api/v1/trustedOrigins", what: "trusted origins").items
        for (name, url) in [("agent0", options.agent0URL), ("todo0", Self.origin(of: options.resource))] {
            let origin = Self.origin(of: url)
            if let found = origins.first(where: { $0["origin"]?.string == origin }), let id = found["id"]?.string {
                try note("trusted origin \(origin)", id, created: false)
                continue
            }
            let made = try await client.call(.POST, "/api/v1/trustedOrigins", body: [
                "name": .string("switchboard-\(name)"), "origin": .string(origin), "scopes": [["type": "CORS"], ["type": "REDIRECT"]],
            ], what: "trusted origin \(origin)").body
            let id = try Self.id(made, "trusted origin")
            state.trustedOrigins["switchboard-\(name)"] = id
            try note("trusted origin \(origin)", id, created: true)
        }

        // 8. The values, for connections.yaml (its ${VAR}s) and agent0.
        var env: [(String, String)] = [
            ("OKTA_ISSUER", client.org), ("AGENT0_CLIENT_ID", state.agent0ClientID ?? ""),
            ("AGENT_ID", agentID), ("AGENT_KEY_ID", key.kid), ("AGENT_KEY_FILE", URL(fileURLWithPath: options.keyPath).standardizedFileURL.path),
            ("MCP_AUTHORIZATION_SERVER", client.org + "/oauth2/" + serverID), ("TODO0_RESOURCE", options.resource),
        ]
        if let secret = agent0.object?["credentials"]?["oauthClient"]?["client_secret"]?.string { env.append(("AGENT0_CLIENT_SECRET", secret)) }
        if let todo0ClientID { env.append(("TODO0_CLIENT_ID", todo0ClientID)) }
        if let stsResource { env.append(("OAUTH_STS_RESOURCE", stsResource)) }
        let text = "# Written by `switchboard okta bootstrap` for \(client.org). Secrets: keep this file private (mode 600).\n"
            + env.map { "\($0.0)=\(Self.quoted($0.1))" }.joined(separator: "\n") + "\n"
        try writePrivateFile(Data(text.utf8), to: options.envPath)
        return steps
    }

    // MARK: helpers

    /// The recorded object if it still exists, else one found by name, else `create()`'s. A
    /// reused object that was deactivated is activated again (`self`: its path, `{list}/{id}`).
    private func adopt(
        recorded: String?, list: String, matching: (JSONValue) -> Bool, what: String, create: () async throws -> JSONValue?
    ) async throws -> (object: JSONValue?, created: Bool) {
        var found: JSONValue?
        var path: String?
        if let recorded, let object = try await client.find(recorded, what: what) {
            (found, path) = (object, recorded)
        } else if let object = try await client.call(.GET, list, what: what).items.first(where: matching), let id = object["id"]?.string {
            (found, path) = (object, String(list.prefix { $0 != "?" }) + "/" + id)
        }
        guard let found, let path else { return (try await create(), true) }
        if found["status"]?.string == "INACTIVE" {
            try await client.call(.POST, path + "/lifecycle/activate", what: "reactivating \(what)")
            return (try await client.call(.GET, path, what: what).body, false)
        }
        return (found, false)
    }

    /// A managed connection found among the agent's: its id, activated again if it was deactivated.
    private func reuse(connection found: JSONValue, in path: String, what: String) async throws -> String {
        let id = try Self.id(found, what)
        if found["status"]?.string == "INACTIVE" {
            try await client.call(.POST, "\(path)/\(id)/lifecycle/activate", body: [:], what: "reactivating the \(what)")
        }
        return id
    }

    private func webApp(label: String, base: String, recorded: String?) async throws -> (object: JSONValue?, created: Bool) {
        try await adopt(
            recorded: recorded.map { "/api/v1/apps/\($0)" }, list: "/api/v1/apps?q=\(label)",
            matching: { $0["label"]?.string == label }, what: "OIDC web app '\(label)'"
        ) {
            try await client.call(.POST, "/api/v1/apps", body: [
                "name": "oidc_client", "label": .string(label), "signOnMode": "OPENID_CONNECT",
                "credentials": ["oauthClient": ["token_endpoint_auth_method": "client_secret_basic"]],
                "settings": ["oauthClient": [
                    "client_uri": .string(base), "redirect_uris": [.string(base + "/callback")], "post_logout_redirect_uris": [.string(base + "/")],
                    "response_types": ["code"], "grant_types": ["authorization_code"], "application_type": "web",
                ]],
            ], what: "OIDC web app '\(label)'").body
        }
    }

    enum Member {
        case user(String)
        case group(String)
    }

    private func assign(_ member: Member, to app: String, state: inout OktaState) async throws {
        switch member {
        case .user(let userID):
            let assigned = try await client.call(.GET, "/api/v1/apps/\(app)/users", what: "users of app \(app)").items
            if assigned.contains(where: { $0["id"]?.string == userID }) { return }
            _ = try await client.call(.POST, "/api/v1/apps/\(app)/users", body: ["id": .string(userID)], what: "assigning user \(userID) to app \(app)")
            state.assignments[app] = userID
        case .group(let groupID):
            let assigned = try await client.call(.GET, "/api/v1/apps/\(app)/groups", what: "groups of app \(app)").items
            if assigned.contains(where: { $0["id"]?.string == groupID }) { return }
            _ = try await client.call(.PUT, "/api/v1/apps/\(app)/groups/\(groupID)", body: [:], what: "assigning group \(groupID) to app \(app)")
            state.groupAssignments[app] = groupID
        }
        try state.save(options.statePath)
    }

    static func id(_ object: JSONValue?, _ what: String) throws -> String {
        guard let id = object?["id"]?.string, !id.isEmpty else { throw OktaToolError("\(what): the API's answer has no id") }
        return id
    }

    static func origin(of url: String) -> String {
        guard let u = URL(string: url), let scheme = u.scheme, let host = u.host else { return url }
        return "\(scheme)://\(host)" + (u.port.map { ":\($0)" } ?? "")
    }

    static func query(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text }

    /// An env-file value: quoted when it has anything a shell would read.
    static func quoted(_ value: String) -> String {
        value.allSatisfy { $0.isLetter || $0.isNumber || "-_.:/@+".contains($0) } ? value : "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
