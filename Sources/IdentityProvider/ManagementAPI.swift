import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OAuthCore
import SwitchboardJSON

/// The subset of Okta's Management API that `switchboard okta bootstrap | rollback` use, with
/// Okta's paths, JSON shapes, status codes and error bodies (`errorCode`, `errorSummary`,
/// `errorLink`, `errorId`, `errorCauses`): authorization servers (scopes, policies, rules,
/// lifecycle), OIDC apps (user assignments, lifecycle), trusted origins, `users/me`, `org`,
/// and AI agents (asynchronous register/activate/deactivate/delete answered 202 + `Location`
/// of an operation, JWKS credentials, managed connections to authorization servers and, through
/// OAuth STS, to idp.yaml's third-party apps, potential connections). Every call needs
/// `Authorization: SSWS {token}` (idp.yaml's `management_api_token`, or the data directory's
/// `management-api-token`). What it creates is stored (``TenantObjects``) and takes effect.
struct ManagementAPI: Sendable {
    let idp: IdentityProvider
    typealias T = TenantObjects

    static let agentsPath = "/workload-principals/api/v1/ai-agents"
    static let customASConnectionType = "IDENTITY_ASSERTION_CUSTOM_AS"
    /// An app's resource server connector reached through OAuth STS (brokered consent). Not in
    /// Okta's published OpenAPI spec (2026-07); the shape is the one public clients of live orgs
    /// use (docs/okta-management-api-notes.md §8).
    static let stsConnectionType = "STS_ACCESS_TOKEN"

    func register(on router: Router<BasicRequestContext>) {
        let api = router.group("api/v1")
        api.get("users/me") { r, _ in guarded(r) { me() } }
        api.get("org") { r, _ in guarded(r) { org() } }

        api.post("authorizationServers") { r, _ in await guardedBody(r) { try createServer($0) } }
        api.get("authorizationServers") { r, _ in guarded(r) { list(.authorizationServer, query: r.uri.queryParameters.get("q"), names: ["name"]) } }
        api.get("authorizationServers/:as") { r, c in guarded(r) { try show(.authorizationServer, c.parameters.get("as")) } }
        api.delete("authorizationServers/:as") { r, c in guarded(r) { try remove(.authorizationServer, c.parameters.get("as"), mustBeInactive: true) } }
        api.post("authorizationServers/:as/lifecycle/:op") { r, c in guarded(r) { try lifecycle(.authorizationServer, c.parameters.get("as"), c.parameters.get("op"), answer: .noContent) } }
        api.post("authorizationServers/:as/scopes") { r, c in await guardedBody(r) { try createScope(server: c.parameters.get("as"), $0) } }
        api.get("authorizationServers/:as/scopes") { r, c in guarded(r) { try children(.scope, of: .authorizationServer, c.parameters.get("as")) } }
        api.get("authorizationServers/:as/scopes/:id") { r, c in guarded(r) { try show(.scope, c.parameters.get("id"), parent: c.parameters.get("as")) } }
        api.delete("authorizationServers/:as/scopes/:id") { r, c in guarded(r) { try removeChild(.scope, c.parameters.get("id"), of: c.parameters.get("as")) } }
        api.post("authorizationServers/:as/policies") { r, c in await guardedBody(r) { try createPolicy(server: c.parameters.get("as"), $0) } }
        api.get("authorizationServers/:as/policies") { r, c in guarded(r) { try children(.policy, of: .authorizationServer, c.parameters.get("as")) } }
        api.get("authorizationServers/:as/policies/:p") { r, c in guarded(r) { try show(.policy, c.parameters.get("p"), parent: c.parameters.get("as")) } }
        api.post("authorizationServers/:as/policies/:p/lifecycle/:op") { r, c in
            guarded(r) { try lifecycle(.policy, c.parameters.get("p"), c.parameters.get("op"), answer: .noContent, parent: c.parameters.get("as")) }
        }
        api.delete("authorizationServers/:as/policies/:p") { r, c in guarded(r) { try removeChild(.policy, c.parameters.get("p"), of: c.parameters.get("as")) } }
        api.post("authorizationServers/:as/policies/:p/rules") { r, c in
            await guardedBody(r) { try createRule(server: c.parameters.get("as"), policy: c.parameters.get("p"), $0) }
        }
        api.get("authorizationServers/:as/policies/:p/rules") { r, c in guarded(r) { try children(.rule, of: .policy, c.parameters.get("p")) } }
        api.get("authorizationServers/:as/policies/:p/rules/:id") { r, c in guarded(r) { try show(.rule, c.parameters.get("id"), parent: c.parameters.get("p")) } }
        api.post("authorizationServers/:as/policies/:p/rules/:id/lifecycle/:op") { r, c in
            guarded(r) { try lifecycle(.rule, c.parameters.get("id"), c.parameters.get("op"), answer: .noContent, parent: c.parameters.get("p")) }
        }
        api.delete("authorizationServers/:as/policies/:p/rules/:id") { r, c in guarded(r) { try removeChild(.rule, c.parameters.get("id"), of: c.parameters.get("p")) } }

        api.post("apps") { r, _ in await guardedBody(r) { try createApp($0) } }
        api.get("apps") { r, _ in guarded(r) { list(.app, query: r.uri.queryParameters.get("q"), names: ["name", "label"]) } }
        api.get("apps/:app") { r, c in guarded(r) { try show(.app, c.parameters.get("app")) } }
        api.delete("apps/:app") { r, c in guarded(r) { try remove(.app, c.parameters.get("app"), mustBeInactive: true) } }
        api.post("apps/:app/lifecycle/:op") { r, c in guarded(r) { try lifecycle(.app, c.parameters.get("app"), c.parameters.get("op"), answer: .ok) } }
        api.post("apps/:app/users") { r, c in await guardedBody(r) { try assign(app: c.parameters.get("app"), $0) } }
        api.get("apps/:app/users") { r, c in guarded(r) { try children(.appUser, of: .app, c.parameters.get("app")) } }
        api.get("apps/:app/users/:user") { r, c in guarded(r) { try showAssignment(.appUser, app: c.parameters.get("app"), c.parameters.get("user")) } }
        api.delete("apps/:app/users/:user") { r, c in guarded(r) { try removeChild(.appUser, c.parameters.get("user"), of: c.parameters.get("app")) } }

        api.get("groups") { r, _ in guarded(r) { groups(query: r.uri.queryParameters.get("q")) } }
        api.get("groups/:id") { r, c in guarded(r) { try group(c.parameters.get("id")) } }
        api.put("apps/:app/groups/:group") { r, c in
            // The body is optional (Okta's examples send a profile and a priority, bootstrap none).
            if (r.headers[.contentLength].flatMap(Int.init) ?? 0) == 0, r.headers[.transferEncoding] == nil {
                return guarded(r) { try assignGroup(app: c.parameters.get("app"), group: c.parameters.get("group"), [:]) }
            }
            return await guardedBody(r) { try assignGroup(app: c.parameters.get("app"), group: c.parameters.get("group"), $0) }
        }
        api.get("apps/:app/groups") { r, c in guarded(r) { try children(.appGroup, of: .app, c.parameters.get("app")) } }
        api.get("apps/:app/groups/:group") { r, c in guarded(r) { try showAssignment(.appGroup, app: c.parameters.get("app"), c.parameters.get("group")) } }
        api.delete("apps/:app/groups/:group") { r, c in guarded(r) { try removeChild(.appGroup, c.parameters.get("group"), of: c.parameters.get("app")) } }

        api.post("trustedOrigins") { r, _ in await guardedBody(r) { try createOrigin($0) } }
        api.get("trustedOrigins") { r, _ in guarded(r) { list(.trustedOrigin, query: r.uri.queryParameters.get("q"), names: ["name", "origin"]) } }
        api.get("trustedOrigins/:id") { r, c in guarded(r) { try show(.trustedOrigin, c.parameters.get("id")) } }
        api.delete("trustedOrigins/:id") { r, c in guarded(r) { try remove(.trustedOrigin, c.parameters.get("id"), mustBeInactive: false) } }

        let agents = router.group(RouterPath(stringLiteral: String(Self.agentsPath.dropFirst())))
        agents.post("") { r, _ in await guardedBody(r) { try registerAgent($0) } }
        agents.get("") { r, _ in guarded(r) { json(["data": .array(idp.tenant.all(.agent).map { .object($0.json) })]) } }
        agents.get(":agent") { r, c in guarded(r) { try show(.agent, c.parameters.get("agent")) } }
        agents.delete(":agent") { r, c in guarded(r) { try agentOperation(c.parameters.get("agent"), "delete") } }
        agents.post(":agent/lifecycle/:op") { r, c in guarded(r) { try agentOperation(c.parameters.get("agent"), c.parameters.get("op") ?? "") } }
        agents.post(":agent/credentials/jwks") { r, c in await guardedBody(r) { try addAgentKey(c.parameters.get("agent"), $0) } }
        agents.get(":agent/credentials/jwks") { r, c in guarded(r) { try dataList(.agentKey, of: c.parameters.get("agent"), "credentials/jwks") } }
        agents.get(":agent/credentials/jwks/:key") { r, c in guarded(r) { try show(.agentKey, c.parameters.get("key"), parent: c.parameters.get("agent")) } }
        agents.post(":agent/connections") { r, c in await guardedBody(r) { try createConnection(c.parameters.get("agent"), $0) } }
        agents.get(":agent/connections") { r, c in guarded(r) { try dataList(.connection, of: c.parameters.get("agent"), "connections") } }
        agents.get(":agent/connections/:id") { r, c in guarded(r) { try show(.connection, c.parameters.get("id"), parent: c.parameters.get("agent")) } }
        agents.post(":agent/connections/:id/lifecycle/:op") { r, c in
            guarded(r) { try lifecycle(.connection, c.parameters.get("id"), c.parameters.get("op"), answer: .ok, parent: c.parameters.get("agent"), body: true) }
        }
        agents.delete(":agent/connections/:id") { r, c in guarded(r) { try removeChild(.connection, c.parameters.get("id"), of: c.parameters.get("agent")) } }
        router.get("workload-principals/api/v1/potential-connections") { r, _ in guarded(r) { try potentialConnections(filter: r.uri.queryParameters.get("filter")) } }
        router.get("workload-principals/api/v1/operations/:id") { r, c in guarded(r) { try operation(c.parameters.get("id")) } }
    }

    // MARK: authentication and errors

    /// An Okta API error: status, `errorCode`, `errorSummary` and causes.
    struct Failure: Error {
        var status: HTTPResponse.Status
        var code: String
        var summary: String
        var causes: [String] = []

        static func validation(_ cause: String) -> Failure { Failure(status: .badRequest, code: "E0000001", summary: "Api validation failed: \(cause)", causes: [cause]) }
        static func notFound(_ id: String, _ type: String) -> Failure {
            Failure(status: .notFound, code: "E0000007", summary: "Not found: Resource not found: \(id) (\(type))")
        }
        static let malformed = Failure(status: .badRequest, code: "E0000003", summary: "The request body was not well-formed.")

        var response: Response {
            let body: JSONValue = [
                "errorCode": .string(code), "errorSummary": .string(summary), "errorLink": .string(code), "errorId": .string(T.newID("oae")),
                "errorCauses": .array(causes.map { ["errorSummary": .string($0)] }),
            ]
            return ManagementAPI.json(body, status: status)
        }
    }

    /// Runs `body` for a caller with the SSWS token; an Okta error body for anything else.
    private func guarded(_ request: Request, _ body: () throws -> Response) -> Response {
        guard authorized(request) else {
            return Failure(status: .unauthorized, code: "E0000011", summary: "Invalid token provided").response
        }
        do { return try body() } catch let failure as Failure { return failure.response } catch {
            idp.logger.error("management API failure", metadata: ["error": "\(error)"])
            return Failure(status: .internalServerError, code: "E0000009", summary: "Internal Server Error").response
        }
    }

    private func guardedBody(_ request: Request, _ body: ([String: JSONValue]) throws -> Response) async -> Response {
        guard authorized(request) else { return Failure(status: .unauthorized, code: "E0000011", summary: "Invalid token provided").response }
        guard let buffer = try? await request.body.collect(upTo: 1 << 20) else { return Failure.malformed.response }
        guard case .object(let fields)? = JSONValue.parse(buffer.readableBytesView) else { return Failure.malformed.response }
        return guarded(request) { try body(fields) }
    }

    private func authorized(_ request: Request) -> Bool {
        // `SSWS {token}` as Okta documents it; the okta SDKs send `SSWS{token}`, which Okta accepts too.
        guard let value = request.headers[.authorization], value.hasPrefix("SSWS") else { return false }
        return constantTimeEquals(value.dropFirst(4).trimmingCharacters(in: .whitespaces), idp.managementToken)
    }

    // MARK: generic object handling

    private static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var h = headers
        h[.contentType] = "application/json"
        h[.cacheControl] = "no-store"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: value.encoded())))
    }
    private func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response { Self.json(value, status: status) }

    private static let typeNames: [T.Kind: String] = [
        .authorizationServer: "AuthorizationServer", .scope: "OAuth2Scope", .policy: "AuthorizationServerPolicy", .rule: "AuthorizationServerPolicyRule",
        .app: "App", .appUser: "AppUser", .appGroup: "ApplicationGroupAssignment", .agent: "AIAgent", .agentKey: "JsonWebKey", .connection: "AgentConnection",
        .trustedOrigin: "TrustedOrigin", .operation: "Operation",
    ]

    private func existing(_ kind: T.Kind, _ id: String?, parent: String? = nil) throws -> T.Object {
        guard let id, let object = idp.tenant.get(kind, id, parent: parent) else { throw Failure.notFound(id ?? "", Self.typeNames[kind] ?? kind.rawValue) }
        return object
    }

    private func show(_ kind: T.Kind, _ id: String?, parent: String? = nil) throws -> Response { json(.object(try existing(kind, id, parent: parent).json)) }

    /// A collection: a JSON array, `q` matching the start of a name (case-insensitive).
    private func list(_ kind: T.Kind, query: String?, names: [String]) -> Response {
        let q = query?.lowercased()
        let found = idp.tenant.all(kind).filter { o in
            guard let q, !q.isEmpty else { return true }
            return names.contains { o.json[$0]?.string?.lowercased().hasPrefix(q) == true }
        }
        return json(.array(found.map { .object($0.json) }))
    }

    private func children(_ kind: T.Kind, of parentKind: T.Kind, _ parent: String?) throws -> Response {
        let owner = try existing(parentKind, parent)
        return json(.array(idp.tenant.all(kind, parent: owner.id).map { .object($0.json) }))
    }

    /// An agent's keys or connections as the workload-principals API lists them: `{data, _links}`.
    private func dataList(_ kind: T.Kind, of agentID: String?, _ path: String) throws -> Response {
        let agent = try existing(.agent, agentID)
        return json([
            "data": .array(idp.tenant.all(kind, parent: agent.id).map { .object($0.json) }),
            "_links": ["self": ["href": .string(idp.issuer + Self.agentsPath + "/" + agent.id + "/" + path)]],
        ])
    }

    private func showAssignment(_ kind: T.Kind, app: String?, _ member: String?) throws -> Response {
        let owner = try existing(.app, app)
        return json(.object(try existing(kind, member.map { Self.assignmentKey(owner.id, $0) }, parent: owner.id).json))
    }

    private func remove(_ kind: T.Kind, _ id: String?, mustBeInactive: Bool) throws -> Response {
        let object = try existing(kind, id)
        if mustBeInactive, object.json["status"]?.string == "ACTIVE" {
            throw kind == .app
                ? Failure(status: .forbidden, code: "E0000056", summary: "Delete application forbidden.", causes: ["deactivate the application first"])
                : Failure.validation("\(Self.typeNames[kind] ?? "object") \(object.id) is ACTIVE: deactivate it first")
        }
        try idp.tenant.delete(kind, object.id)
        idp.tenantChanged()
        return Response(status: .noContent)
    }

    /// An assignment is stored under "{app}/{user or group}": one user or group can be assigned
    /// to several apps (its JSON `id` stays the user's or group's).
    static func assignmentKey(_ app: String, _ member: String) -> String { app + "/" + member }

    private func removeChild(_ kind: T.Kind, _ id: String?, of parent: String?) throws -> Response {
        let key = (kind == .appUser || kind == .appGroup) ? id.map { Self.assignmentKey(parent ?? "", $0) } : id
        let object = try existing(kind, key, parent: parent)
        try idp.tenant.delete(kind, object.id)
        idp.tenantChanged()
        return Response(status: .noContent)
    }

    private func lifecycle(_ kind: T.Kind, _ id: String?, _ op: String?, answer: HTTPResponse.Status, parent: String? = nil, body: Bool = false) throws -> Response {
        var object = try existing(kind, id, parent: parent)
        switch op {
        case "activate": object.json["status"] = "ACTIVE"
        case "deactivate": object.json["status"] = "INACTIVE"
        default: throw Failure(status: .notFound, code: "E0000008", summary: "The requested path was not found")
        }
        object.json["lastUpdated"] = .string(Self.now())
        try idp.tenant.put(kind, object.id, parent: object.parent, object.json)
        idp.tenantChanged()
        return body ? json(.object(object.json), status: answer) : Response(status: answer)
    }

    private static func now() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }

    private func required(_ fields: [String: JSONValue], _ name: String) throws -> String {
        guard let value = fields[name]?.string, !value.trimmingCharacters(in: .whitespaces).isEmpty else { throw Failure.validation("\(name): The field cannot be left blank") }
        return value
    }

    private func stamped(_ fields: [String: JSONValue], id: String, status: String = "ACTIVE") -> [String: JSONValue] {
        var o = fields
        let now = Self.now()
        o["id"] = .string(id)
        o["status"] = .string(status)
        o["created"] = .string(now)
        o["lastUpdated"] = .string(now)
        return o
    }

    // MARK: users and org

    private func admin() -> IdPConfig.User? {
        let users = idp.config.users
        return users.first { $0.groups?.contains("admins") == true } ?? users.first
    }

    private func me() -> Response {
        guard let user = admin() else { return Failure.notFound("me", "User").response }
        let names = user.name.split(separator: " ", maxSplits: 1).map(String.init)
        return json([
            "id": .string(user.id), "status": "ACTIVE",
            "profile": ["login": .string(user.email), "email": .string(user.email), "firstName": .string(names.first ?? user.name), "lastName": .string(names.count > 1 ? names[1] : "")],
        ])
    }

    private func orgID() throws -> String {
        if let org = idp.tenant.all(.org).first { return org.id }
        let id = T.newID("00o")
        try idp.tenant.put(.org, id, ["id": .string(id)])
        return id
    }

    private func org() -> Response {
        guard let id = try? orgID() else { return Failure(status: .internalServerError, code: "E0000009", summary: "Internal Server Error").response }
        return json(["id": .string(id), "subdomain": "switchboard-dev", "status": "ACTIVE"])
    }

    // MARK: authorization servers

    private func createServer(_ fields: [String: JSONValue]) throws -> Response {
        let name = try required(fields, "name")
        guard let audiences = fields["audiences"]?.array?.compactMap(\.string), !audiences.isEmpty else {
            throw Failure.validation("audiences: The field cannot be left blank")
        }
        guard !idp.tenant.all(.authorizationServer).contains(where: { $0.json["name"]?.string == name }) else {
            throw Failure(status: .badRequest, code: "E0000195", summary: "Api validation failed due to conflict: name", causes: ["name: An object with this field already exists."])
        }
        let id = T.newID("aus")
        var o = stamped(fields, id: id)
        o["audiences"] = .array(audiences.map { .string($0) })
        o["issuer"] = .string(idp.asIssuer(id))
        o["issuerMode"] = "ORG_URL"
        o["_links"] = ["self": ["href": .string(idp.issuer + "/api/v1/authorizationServers/" + id)]]
        try idp.tenant.put(.authorizationServer, id, o)
        idp.tenantChanged()
        return json(.object(o), status: .created)
    }

    private func createScope(server: String?, _ fields: [String: JSONValue]) throws -> Response {
        let owner = try existing(.authorizationServer, server)
        let name = try required(fields, "name")
        guard !idp.tenant.all(.scope, parent: owner.id).contains(where: { $0.json["name"]?.string == name }) else {
            throw Failure.validation("name: A scope with this name already exists")
        }
        let id = T.newID("scp")
        var o = fields
        o["id"] = .string(id)
        o["system"] = false
        o["default"] = fields["default"] ?? false
        o["displayName"] = fields["displayName"] ?? .string(name)
        o["metadataPublish"] = fields["metadataPublish"] ?? "NO_CLIENTS"
        try idp.tenant.put(.scope, id, parent: owner.id, o)
        idp.tenantChanged()
        return json(.object(o), status: .created)
    }

    private func createPolicy(server: String?, _ fields: [String: JSONValue]) throws -> Response {
        let owner = try existing(.authorizationServer, server)
        _ = try required(fields, "name")
        guard fields["type"]?.string == "OAUTH_AUTHORIZATION_POLICY" else { throw Failure.validation("type: must be OAUTH_AUTHORIZATION_POLICY") }
        guard fields["conditions"]?["clients"]?["include"]?.array?.isEmpty == false else {
            throw Failure.validation("conditions.clients.include: The field cannot be left blank")
        }
        let id = T.newID("00p")
        var o = stamped(fields, id: id)
        o["system"] = false
        try idp.tenant.put(.policy, id, parent: owner.id, o)
        idp.tenantChanged()
        return json(.object(o), status: .created)
    }

    private func createRule(server: String?, policy: String?, _ fields: [String: JSONValue]) throws -> Response {
        _ = try existing(.authorizationServer, server)
        let owner = try existing(.policy, policy, parent: server)
        _ = try required(fields, "name")
        guard fields["conditions"]?["grantTypes"]?["include"]?.array?.isEmpty == false else {
            throw Failure.validation("conditions.grantTypes.include: The field cannot be left blank")
        }
        guard fields["conditions"]?["scopes"]?["include"]?.array?.isEmpty == false else {
            throw Failure.validation("conditions.scopes.include: The field cannot be left blank")
        }
        let id = T.newID("0pr")
        var o = stamped(fields, id: id)
        o["type"] = fields["type"] ?? "RESOURCE_ACCESS"
        o["system"] = false
        try idp.tenant.put(.rule, id, parent: owner.id, o)
        idp.tenantChanged()
        return json(.object(o), status: .created)
    }

    // MARK: apps

    private func createApp(_ fields: [String: JSONValue]) throws -> Response {
        guard fields["name"]?.string == "oidc_client", fields["signOnMode"]?.string == "OPENID_CONNECT" else {
            throw Failure.validation("name: only OIDC applications (name oidc_client, signOnMode OPENID_CONNECT) are supported here")
        }
        _ = try required(fields, "label")
        guard let settings = fields["settings"]?["oauthClient"], settings["redirect_uris"]?.array?.isEmpty == false else {
            throw Failure.validation("settings.oauthClient.redirect_uris: The field cannot be left blank")
        }
        let id = T.newID("0oa")
        var o = stamped(fields, id: id)
        var credentials = fields["credentials"]?.object ?? [:]
        var client = credentials["oauthClient"]?.object ?? [:]
        client["client_id"] = .string(T.newID("0oa"))
        client["client_secret"] = .string(RandomToken.make(bytes: 30))
        client["token_endpoint_auth_method"] = client["token_endpoint_auth_method"] ?? "client_secret_basic"
        client["autoKeyRotation"] = true
        credentials["oauthClient"] = .object(client)
        o["credentials"] = .object(credentials)
        try idp.tenant.put(.app, id, o)
        idp.tenantChanged()
        return json(.object(o))  // Okta answers 200, not 201
    }

    private func assign(app: String?, _ fields: [String: JSONValue]) throws -> Response {
        let owner = try existing(.app, app)
        let userID = try required(fields, "id")
        guard let user = idp.config.user(id: userID) else { throw Failure.notFound(userID, "User") }
        var o = stamped(fields, id: userID)
        o["scope"] = "USER"
        o["credentials"] = ["userName": .string(user.email)]
        o["_links"] = ["app": ["href": .string(idp.issuer + "/api/v1/apps/" + owner.id)], "user": ["href": .string(idp.issuer + "/api/v1/users/" + userID)]]
        try idp.tenant.put(.appUser, Self.assignmentKey(owner.id, userID), parent: owner.id, o)
        return json(.object(o))
    }

    // MARK: groups (the directory's, read-only) and app group assignments

    /// The groups the directory's users are in, with ids stable across restarts.
    private func groupObjects() -> [JSONValue] {
        let names = Set(idp.config.users.flatMap { $0.groups ?? [] }).sorted()
        return names.map { name in
            ["id": .string(Self.groupID(name)), "type": "OKTA_GROUP", "profile": ["name": .string(name), "description": .string("development group \(name)")]]
        }
    }

    static func groupID(_ name: String) -> String {
        "00g" + String(SHA256Hex.of(name).prefix(17))
    }

    private func group(_ id: String?) throws -> Response {
        guard let found = groupObjects().first(where: { $0["id"]?.string == id }) else { throw Failure.notFound(id ?? "", "UserGroup") }
        return json(found)
    }

    private func groups(query: String?) -> Response {
        let q = query?.lowercased() ?? ""
        return json(.array(groupObjects().filter { q.isEmpty || $0["profile"]?["name"]?.string?.lowercased().hasPrefix(q) == true }))
    }

    private func assignGroup(app: String?, group: String?, _ fields: [String: JSONValue]) throws -> Response {
        let owner = try existing(.app, app)
        guard let group, groupObjects().contains(where: { $0["id"]?.string == group }) else { throw Failure.notFound(group ?? "", "UserGroup") }
        let now = Self.now()
        let o: [String: JSONValue] = [
            "id": .string(group), "priority": fields["priority"] ?? 0, "profile": fields["profile"] ?? [:], "lastUpdated": .string(now),
            "_links": ["app": ["href": .string(idp.issuer + "/api/v1/apps/" + owner.id)], "group": ["href": .string(idp.issuer + "/api/v1/groups/" + group)]],
        ]
        try idp.tenant.put(.appGroup, Self.assignmentKey(owner.id, group), parent: owner.id, o)
        return json(.object(o))
    }

    // MARK: trusted origins

    private func createOrigin(_ fields: [String: JSONValue]) throws -> Response {
        let name = try required(fields, "name")
        let origin = try required(fields, "origin")
        guard let url = URL(string: origin), url.scheme != nil, url.host != nil, url.path.isEmpty || url.path == "/" else {
            throw Failure.validation("origin: must be a scheme, host and port only")
        }
        if idp.tenant.all(.trustedOrigin).contains(where: { $0.json["origin"]?.string == origin || $0.json["name"]?.string == name }) {
            throw Failure.validation("origin: A trusted origin with this name or origin already exists")
        }
        let id = T.newID("tos")
        let o = stamped(fields, id: id)
        try idp.tenant.put(.trustedOrigin, id, o)
        return json(.object(o))  // Okta answers 200
    }

    // MARK: AI agents (asynchronous operations)

    private func registerAgent(_ fields: [String: JSONValue]) throws -> Response {
        guard let name = fields["profile"]?["name"]?.string, !name.isEmpty else { throw Failure.validation("profile.name: The field cannot be left blank") }
        let appID = try required(fields, "appId")
        _ = try existing(.app, appID)
        let id = T.newID("wlp")
        var o = stamped(fields, id: id, status: "STAGED")
        o["_links"] = ["self": ["href": .string(idp.issuer + Self.agentsPath + "/" + id)]]
        try idp.tenant.put(.agent, id, o)
        return try accepted("ai-agent:Register", agent: o)
    }

    private func agentOperation(_ agentID: String?, _ op: String) throws -> Response {
        var agent = try existing(.agent, agentID)
        let status = agent.json["status"]?.string ?? ""
        switch op {
        case "activate":
            guard !idp.tenant.all(.agentKey, parent: agent.id).isEmpty else {
                throw Failure.validation("credentials: register a public key (credentials/jwks) before activating the agent")
            }
            agent.json["status"] = "ACTIVE"
        case "deactivate":
            guard status == "ACTIVE" else { throw Failure.validation("status: only an ACTIVE agent can be deactivated") }
            agent.json["status"] = "INACTIVE"
        case "delete":
            guard status != "ACTIVE" else { throw Failure.validation("status: deactivate the agent before deleting it") }
            try idp.tenant.delete(.agent, agent.id)
            idp.tenantChanged()
            agent.json["status"] = "DELETED"
            return try accepted("ai-agent:Delete", agent: agent.json)
        default:
            throw Failure(status: .notFound, code: "E0000008", summary: "The requested path was not found")
        }
        agent.json["lastUpdated"] = .string(Self.now())
        try idp.tenant.put(.agent, agent.id, agent.json)
        idp.tenantChanged()
        return try accepted("ai-agent:" + op.prefix(1).uppercased() + op.dropFirst(), agent: agent.json)
    }

    /// 202 with the `Location` of an operation. The change is made now; the operation reports
    /// IN_PROGRESS to its first poll and COMPLETED after, so a client's polling is exercised.
    private func accepted(_ type: String, agent: [String: JSONValue]) throws -> Response {
        let id = "op-" + T.newID("")
        let now = Self.now()
        let o: [String: JSONValue] = [
            "id": .string(id), "type": .string(type), "status": "IN_PROGRESS", "created": .string(now), "started": .string(now),
            "resource": [
                "id": agent["id"] ?? .null, "type": "AI_AGENT", "status": agent["status"] ?? .null,
                "_links": ["self": ["href": .string(idp.issuer + Self.agentsPath + "/" + (agent["id"]?.string ?? ""))]],
            ], "polls": 0,
        ]
        try idp.tenant.put(.operation, id, o)
        var h = HTTPFields()
        h[.location] = idp.issuer + "/workload-principals/api/v1/operations/" + id
        return Response(status: .accepted, headers: h)
    }

    private func operation(_ id: String?) throws -> Response {
        var op = try existing(.operation, id)
        let polls = (op.json["polls"]?.integer ?? 0) + 1
        op.json["polls"] = .number(Double(polls))
        if polls > 1 {
            op.json["status"] = "COMPLETED"
            op.json["completed"] = op.json["completed"] ?? .string(Self.now())
        }
        try idp.tenant.put(.operation, op.id, op.json)
        var shown = op.json
        shown["polls"] = nil
        return json(.object(shown))
    }

    private func addAgentKey(_ agentID: String?, _ fields: [String: JSONValue]) throws -> Response {
        let agent = try existing(.agent, agentID)
        guard let kty = fields["kty"]?.string, kty == "RSA" || kty == "EC" else { throw Failure.validation("kty: RSA or EC") }
        let members = kty == "RSA" ? ["n", "e"] : ["crv", "x", "y"]
        for m in members where fields[m]?.string?.isEmpty != false { throw Failure.validation("\(m): The field cannot be left blank") }
        var o = stamped(fields, id: T.newID("pks"))
        o["kid"] = fields["kid"] ?? .string(T.newID("kid"))
        o["use"] = fields["use"] ?? "sig"
        o["alg"] = fields["alg"] ?? (kty == "RSA" ? "RS256" : "ES256")
        try idp.tenant.put(.agentKey, o["id"]?.string ?? "", parent: agent.id, o)
        idp.tenantChanged()
        return json(.object(o), status: .created)
    }

    /// What an agent could be connected to, of one `connectionType` (`filter=connectionType eq "…"`):
    /// the active authorization servers created here, or the third-party apps (idp.yaml's
    /// `third_party_apps`) whose resource server connector is reached through OAuth STS.
    private func potentialConnections(filter: String?) throws -> Response {
        let parts = (filter ?? "").split(separator: " ", maxSplits: 2).map(String.init)
        guard parts.count == 3, parts[0] == "connectionType", parts[1] == "eq", parts[2].count > 2, parts[2].hasPrefix("\""), parts[2].hasSuffix("\"") else {
            throw Failure.validation("filter: must be connectionType eq \"<type>\"")
        }
        let type = String(parts[2].dropFirst().dropLast())
        let found: [JSONValue]
        switch type {
        case Self.customASConnectionType:
            let org = try orgID()
            found = idp.tenant.all(.authorizationServer).filter { $0.json["status"]?.string == "ACTIVE" }.map { server in
                [
                    "connectionType": .string(type), "resourceIndicator": server.json["audiences"]?.array?.first ?? .null,
                    "authorizationServer": ["orn": .string("orn:okta:idp:\(org):authorization_servers:\(server.id)"), "name": server.json["name"] ?? .null,
                                            "issuerUrl": server.json["issuer"] ?? .null,
                                            "_links": ["self": ["href": .string(idp.issuer + "/api/v1/authorizationServers/" + server.id)]]],
                ]
            }
        case Self.stsConnectionType:
            let org = try orgID()
            found = idp.config.thirdPartyApps.map { .object(stsResource($0, org: org)) }.map { ["connectionType": .string(type), "resourceIndicator": $0["orn"] ?? .null, "resource": $0] }
        default:
            found = []
        }
        return json(["data": .array(found), "_links": ["self": ["href": .string(idp.issuer + "/workload-principals/api/v1/potential-connections")]]])
    }

    /// A third-party app as an STS connection's `resource`.
    private func stsResource(_ app: IdPConfig.ThirdPartyApp, org: String) -> [String: JSONValue] {
        [
            "appInstanceId": .string(app.id), "appInstanceName": .string(app.name), "resourceType": "APP", "orn": .string(app.resource),
            "clientAuthSettings": ["name": .string("\(app.name) resource server"), "orn": .string("orn:okta:idp:\(org):apps:\(app.id):client_auth_settings:default")],
        ]
    }

    private func createConnection(_ agentID: String?, _ fields: [String: JSONValue]) throws -> Response {
        let agent = try existing(.agent, agentID)
        guard agent.json["status"]?.string == "ACTIVE" else { throw Failure.validation("status: connections can be made only from an ACTIVE agent") }
        let id = T.newID("mcn")
        var o = stamped(fields, id: id)
        o["orn"] = .string("orn:okta:idp:\(try orgID()):connections:\(id)")
        switch fields["connectionType"]?.string {
        case Self.customASConnectionType:
            guard let orn = fields["authorizationServer"]?["orn"]?.string, let serverID = orn.split(separator: ":").last.map(String.init),
                  let server = idp.tenant.get(.authorizationServer, serverID)
            else { throw Failure.validation("authorizationServer.orn: no such authorization server") }
            // Okta's default resource indicator is the server's ORN: any of its audiences.
            let resource = fields["resourceIndicator"]?.string ?? orn
            guard resource == orn || server.json["audiences"]?.array?.contains(.string(resource)) == true else {
                throw Failure.validation("resourceIndicator: '\(resource)' is neither an audience of authorization server \(serverID) nor its ORN")
            }
            o["resourceIndicator"] = .string(resource)
            o["scopeCondition"] = fields["scopeCondition"] ?? "ALL_SCOPES"
            var serverInfo = fields["authorizationServer"]?.object ?? [:]
            serverInfo["name"] = server.json["name"]
            serverInfo["issuerUrl"] = server.json["issuer"]
            serverInfo["_links"] = ["self": ["href": .string(idp.issuer + "/api/v1/authorizationServers/" + serverID)]]
            o["authorizationServer"] = .object(serverInfo)
        case Self.stsConnectionType:
            guard let appID = fields["resource"]?["appInstanceId"]?.string, !appID.isEmpty else {
                throw Failure.validation("resource.appInstanceId: The field cannot be left blank")
            }
            guard let app = idp.config.app(id: appID) else { throw Failure.validation("resource.appInstanceId: no app instance \(appID) with a resource server connector") }
            let resource = stsResource(app, org: try orgID())
            guard let settings = fields["resource"]?["clientAuthSettings"]?["orn"]?.string, settings == resource["clientAuthSettings"]?["orn"]?.string else {
                throw Failure.validation("resource.clientAuthSettings.orn: not the resource server connector of app \(appID)")
            }
            o["resource"] = .object(resource)
            o["resourceIndicator"] = .string(app.resource)
        default:
            throw Failure.validation("connectionType: only \(Self.customASConnectionType) and \(Self.stsConnectionType) are supported here")
        }
        try idp.tenant.put(.connection, id, parent: agent.id, o)
        idp.tenantChanged()
        return json(.object(o), status: .created)
    }
}
