import Foundation
import SwitchboardJSON
import Synchronization

/// What the Management API created, held as Okta's own JSON (what the API answers) and kept in
/// SQLite: authorization servers with their scopes, policies and rules, OIDC apps and their
/// user assignments, AI agents with their keys and managed connections, trusted origins, and
/// the asynchronous operations of agents. ``effective(over:)`` turns the active ones into
/// directory entries, so what is created takes effect at the token endpoints.
final class TenantObjects: Sendable {
    struct Object: Sendable {
        var kind: Kind
        var id: String
        var parent: String?
        var json: [String: JSONValue]
        var seq: Int
    }

    enum Kind: String, Sendable, CaseIterable {
        case authorizationServer = "as", scope, policy, rule, app, appUser = "app_user", appGroup = "app_group", agent, agentKey = "agent_key"
        case connection, trustedOrigin = "trusted_origin", operation, org
    }

    private let store: IdPStore
    private let objects: Mutex<[Object]>

    init(store: IdPStore) throws {
        self.store = store
        var loaded: [Object] = []
        for row in try store.managementObjects() {
            guard let kind = Kind(rawValue: row.kind), case .object(let json)? = JSONValue.parse(Array(row.json.utf8)) else { continue }
            loaded.append(Object(kind: kind, id: row.id, parent: row.parent, json: json, seq: row.seq))
        }
        objects = Mutex(loaded)
    }

    func all(_ kind: Kind, parent: String? = nil) -> [Object] {
        objects.withLock { $0.filter { $0.kind == kind && (parent == nil || $0.parent == parent) } }
    }

    func get(_ kind: Kind, _ id: String, parent: String? = nil) -> Object? {
        objects.withLock { $0.first { $0.kind == kind && $0.id == id && (parent == nil || $0.parent == parent) } }
    }

    /// Creates or replaces an object (written through to SQLite first).
    func put(_ kind: Kind, _ id: String, parent: String? = nil, _ json: [String: JSONValue]) throws {
        try objects.withLock { list in
            let seq = list.first { $0.kind == kind && $0.id == id }?.seq ?? ((list.map(\.seq).max() ?? 0) + 1)
            let text = String(decoding: JSONValue.object(json).encoded(), as: UTF8.self)
            try store.saveManagementObject(.init(kind: kind.rawValue, id: id, parent: parent, json: text, seq: seq))
            list.removeAll { $0.kind == kind && $0.id == id }
            list.append(Object(kind: kind, id: id, parent: parent, json: json, seq: seq))
            list.sort { $0.seq < $1.seq }
        }
    }

    /// Deletes an object and everything under it (an authorization server's scopes, policies
    /// and rules; an app's assignments; an agent's keys and connections).
    func delete(_ kind: Kind, _ id: String) throws {
        try objects.withLock { list in
            var doomed: [(kind: String, id: String)] = [(kind.rawValue, id)]
            var parents: Set<String> = [id]
            var grew = true
            while grew {
                grew = false
                for o in list where o.parent.map(parents.contains) == true && !parents.contains(o.id) {
                    parents.insert(o.id)
                    doomed.append((o.kind.rawValue, o.id))
                    grew = true
                }
            }
            try store.deleteManagementObjects(doomed)
            let gone = Set(doomed.map { "\($0.kind)/\($0.id)" })
            list.removeAll { gone.contains("\($0.kind.rawValue)/\($0.id)") }
        }
    }

    /// The directory: the file's (or the embedded defaults') entries, then what the API created
    /// and is active. An id the file already has is not replaced.
    func effective(over base: IdPConfig) -> IdPConfig {
        var config = base
        let snapshot = objects.withLock { $0 }
        func active(_ o: Object) -> Bool { o.json["status"]?.string == "ACTIVE" }
        func strings(_ v: JSONValue?) -> [String] { v?.array?.compactMap(\.string) ?? [] }

        for server in snapshot where server.kind == .authorizationServer && active(server) && config.authorizationServer(server.id) == nil {
            let scopes = snapshot.filter { $0.kind == .scope && $0.parent == server.id }
            let policies = snapshot.filter { $0.kind == .policy && $0.parent == server.id && active($0) }
                .sorted { ($0.json["priority"]?.integer ?? 0) < ($1.json["priority"]?.integer ?? 0) }
            var rules: [IdPConfig.AccessRule] = []
            for policy in policies {
                let clients = strings(policy.json["conditions"]?["clients"]?["include"])
                for rule in snapshot.filter({ $0.kind == .rule && $0.parent == policy.id && active($0) })
                    .sorted(by: { ($0.json["priority"]?.integer ?? 0) < ($1.json["priority"]?.integer ?? 0) }) {
                    let minutes = rule.json["actions"]?["token"]?["accessTokenLifetimeMinutes"]?.integer
                    rules.append(.init(clients: clients, grantTypes: strings(rule.json["conditions"]?["grantTypes"]?["include"]),
                                       scopes: strings(rule.json["conditions"]?["scopes"]?["include"]), tokenLifetime: minutes.map { $0 * 60 }))
                }
            }
            var entry = IdPConfig.AuthorizationServer(
                id: server.id, resources: strings(server.json["audiences"]), scopes: scopes.compactMap { $0.json["name"]?.string },
                defaultScopes: scopes.filter { $0.json["default"]?.bool == true }.compactMap { $0.json["name"]?.string },
                onRequestScopes: [], tokenLifetime: nil)
            entry.accessRules = rules
            config.authorizationServers.append(entry)
        }
        for app in snapshot where app.kind == .app && active(app) {
            guard let client = app.json["credentials"]?["oauthClient"], let id = client["client_id"]?.string, config.webClient(id) == nil else { continue }
            let settings = app.json["settings"]?["oauthClient"]
            config.webClients.append(.init(
                clientID: id, clientSecret: client["client_secret"]?.string ?? "", redirectURIs: strings(settings?["redirect_uris"]),
                postLogoutRedirectURIs: strings(settings?["post_logout_redirect_uris"])))
        }
        for agent in snapshot where agent.kind == .agent && active(agent) && config.agent(agent.id) == nil {
            let app = agent.json["appId"]?.string.flatMap { id in snapshot.first { $0.kind == .app && $0.id == id } }
            let actsFor = app?.json["credentials"]?["oauthClient"]?["client_id"]?.string.map { [$0] } ?? []
            let keys: [[String: String]] = snapshot.filter { $0.kind == .agentKey && $0.parent == agent.id && active($0) }.map { key in
                var jwk: [String: String] = [:]
                for name in ["kty", "kid", "alg", "use", "n", "e", "crv", "x", "y"] { jwk[name] = key.json[name]?.string }
                return jwk
            }
            let connections: [IdPConfig.ManagedConnection] = snapshot.filter { $0.kind == .connection && $0.parent == agent.id && active($0) }.compactMap { c in
                if c.json["connectionType"]?.string == ManagementAPI.stsConnectionType {
                    guard let app = c.json["resource"]?["appInstanceId"]?.string, let resource = c.json["resourceIndicator"]?.string else { return nil }
                    return .init(target: .app(app), resource: resource, scopes: nil)
                }
                // orn:okta:idp:{org}:authorization_servers:{id}
                guard let orn = c.json["authorizationServer"]?["orn"]?.string, let server = orn.split(separator: ":").last else { return nil }
                let condition = c.json["scopeCondition"]?.string ?? "ALL_SCOPES"
                let indicator = c.json["resourceIndicator"]?.string
                return .init(target: .authorizationServer(String(server)), resource: indicator?.hasPrefix("orn:") == false ? indicator : nil,
                             scopes: condition == "INCLUDE_ONLY" ? strings(c.json["scopes"]) : nil)
            }
            var entry = IdPConfig.Agent(clientID: agent.id, actsFor: actsFor, jwks: keys)
            entry.connections = connections
            config.agents.append(entry)
        }
        return config
    }

    /// A new object id in Okta's shape: a three-character type prefix and 17 more characters.
    static func newID(_ prefix: String) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        var generator = SystemRandomNumberGenerator()
        return prefix + String((0..<17).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] })
    }
}
