import Foundation
import Yams

/// The IdP's directory and policies (`idp.yaml`). The embedded defaults need no editing:
/// users alice and bob, the agent0 web client, the agent `wlp-dev-agent0`, the `todo-mcp`
/// authorization server and two third-party apps for OAuth STS.
public struct IdPConfig: Codable, Sendable {
    public struct User: Codable, Sendable {
        /// Login name.
        public var username: String
        /// Demo password (development only).
        public var password: String
        /// Stable user id (`sub` and `uid`).
        public var id: String
        public var name: String
        public var email: String
        /// Group names, carried in ID tokens as the `groups` claim (as an Okta org's groups
        /// claim is), so that group rules of gateway policies can be tried offline.
        public var groups: [String]?
    }

    /// An OIDC web client (the agent's browser app).
    public struct WebClient: Codable, Sendable {
        public var clientID: String
        public var clientSecret: String
        public var redirectURIs: [String]
        public var postLogoutRedirectURIs: [String]?

        enum CodingKeys: String, CodingKey {
            case clientID = "client_id"
            case clientSecret = "client_secret"
            case redirectURIs = "redirect_uris"
            case postLogoutRedirectURIs = "post_logout_redirect_uris"
        }
    }

    /// An AI agent: authenticates with private_key_jwt, may act for the listed web clients' users.
    public struct Agent: Codable, Sendable {
        public var clientID: String
        /// Web client ids whose ID tokens this agent may exchange.
        public var actsFor: [String]
        /// Public JWKs registered in the file (in addition to those `--init-agent` stores).
        public var jwks: [[String: String]]?
        /// Managed connections (an agent created through the Management API): the authorization
        /// servers it may get ID-JAGs for and the third-party apps it may get STS tokens for.
        /// Nil: any (an agent of the file).
        var connections: [ManagedConnection]?

        enum CodingKeys: String, CodingKey {
            case clientID = "client_id"
            case actsFor = "acts_for"
            case jwks
        }
    }

    /// An agent's managed connection: to a custom authorization server (Okta's
    /// `IDENTITY_ASSERTION_CUSTOM_AS`, ID-JAG) or to a third-party app through OAuth STS
    /// (`STS_ACCESS_TOKEN`, brokered consent).
    struct ManagedConnection: Sendable {
        enum Target: Equatable, Sendable {
            case authorizationServer(String)
            case app(String)
        }
        var target: Target
        /// The resource indicator the agent asks for; nil: any of the server's (a connection whose
        /// indicator is the server's ORN, Okta's default).
        var resource: String?
        /// Nil: every scope of the server.
        var scopes: [String]?
    }

    /// An access policy rule of an authorization server created through the Management API.
    struct AccessRule: Sendable {
        /// Client ids the policy applies to (`ALL_CLIENTS`: any).
        var clients: [String]
        var grantTypes: [String]
        /// `*`: any scope of the server.
        var scopes: [String]
        var tokenLifetime: Int?

        func allows(client: String, grant: String, scopes asked: Set<String>) -> Bool {
            (clients.contains(client) || clients.contains("ALL_CLIENTS")) && grantTypes.contains(grant)
                && (scopes.contains("*") || asked.isSubset(of: Set(scopes)))
        }
    }

    /// A custom authorization server (`/oauth2/{id}`) protecting MCP resources.
    public struct AuthorizationServer: Codable, Sendable {
        public var id: String
        /// Resource indicators of the MCP servers it issues tokens for; the first is the default.
        public var resources: [String]
        /// Every scope it knows.
        public var scopes: [String]
        /// Granted on every request.
        public var defaultScopes: [String]
        /// Granted only when explicitly requested (so step-up is exercised).
        public var onRequestScopes: [String]
        /// Access-token lifetime in seconds.
        public var tokenLifetime: Int?
        /// Access policy rules in priority order (a server created through the Management API);
        /// nil: none checked (a server of the file).
        var accessRules: [AccessRule]?

        enum CodingKeys: String, CodingKey {
            case id, resources, scopes
            case defaultScopes = "default_scopes"
            case onRequestScopes = "on_request_scopes"
            case tokenLifetime = "token_lifetime"
        }
    }

    /// A third-party app reached through OAuth STS (brokered consent).
    public struct ThirdPartyApp: Codable, Sendable {
        public var id: String
        public var name: String
        /// The resource indicator agents exchange for (e.g. `orn:dev:idp:github`).
        public var resource: String
        /// The `aud` of the tokens issued for it (the app's API base URL).
        public var audience: String
        public var scopes: [String]
        public var tokenLifetime: Int?

        enum CodingKeys: String, CodingKey {
            case id, name, resource, audience, scopes
            case tokenLifetime = "token_lifetime"
        }
    }

    public var users: [User]
    public var webClients: [WebClient]
    public var agents: [Agent]
    public var authorizationServers: [AuthorizationServer]
    public var thirdPartyApps: [ThirdPartyApp]
    /// The Management API's SSWS token; nil: one is generated into the data directory
    /// (`management-api-token`, mode 600) on first start.
    public var managementAPIToken: String?

    enum CodingKeys: String, CodingKey {
        case managementAPIToken = "management_api_token"
        case users
        case webClients = "web_clients"
        case agents
        case authorizationServers = "authorization_servers"
        case thirdPartyApps = "third_party_apps"
    }

    /// Parses `idp.yaml` text.
    public static func parse(_ yaml: String) throws -> IdPConfig {
        try YAMLDecoder().decode(IdPConfig.self, from: yaml)
    }

    /// The embedded development defaults (agent0 on :3000, todo0 on :5002, the GitHub stand-in on :7000).
    public static let developmentDefaults: IdPConfig = development()

    /// The development directory for services on other ports (`switchboard dev --port-offset`):
    /// agent0's redirect URIs, todo0's resource indicator and the stand-in's token audiences follow them.
    public static func development(
        agent0: String = "http://127.0.0.1:3000", todo0Resource: String = "http://127.0.0.1:5002/mcp", isv: String = "http://127.0.0.1:7000"
    ) -> IdPConfig {
        var config = try! parse(developmentYAML)
        config.webClients[0].redirectURIs = [agent0 + "/callback"] + (agent0.hasPrefix("http://127.0.0.1:") ? [agent0.replacingOccurrences(of: "127.0.0.1", with: "localhost") + "/callback"] : [])
        config.webClients[0].postLogoutRedirectURIs = [agent0 + "/"] + (agent0.hasPrefix("http://127.0.0.1:") ? [agent0.replacingOccurrences(of: "127.0.0.1", with: "localhost") + "/"] : [])
        config.authorizationServers[0].resources = [todo0Resource]
        config.thirdPartyApps[0].audience = isv
        config.thirdPartyApps[1].audience = isv + "/mcp"
        return config
    }

    static let developmentYAML = """
        users:
          - {username: alice, password: alice-dev-password, id: 00u-alice, name: Alice Example, email: alice@example.test, groups: [admins, everyone]}
          - {username: bob, password: bob-dev-password, id: 00u-bob, name: Bob Example, email: bob@example.test, groups: [everyone]}
        web_clients:
          - client_id: agent0
            client_secret: agent0-dev-secret
            redirect_uris: [http://127.0.0.1:3000/callback, http://localhost:3000/callback]
            post_logout_redirect_uris: [http://127.0.0.1:3000/, http://localhost:3000/]
        agents:
          - client_id: wlp-dev-agent0
            acts_for: [agent0]
        authorization_servers:
          - id: todo-mcp
            resources: [http://127.0.0.1:5002/mcp]
            scopes: [mcp:connect, mcp:tools:read, mcp:tools:manage]
            default_scopes: [mcp:connect, mcp:tools:read]
            on_request_scopes: [mcp:tools:manage]
            token_lifetime: 3600
        third_party_apps:
          - {id: github, name: GitHub, resource: "orn:dev:idp:github", audience: "http://127.0.0.1:7000", scopes: [repo], token_lifetime: 3600}
          - {id: github-mcp, name: GitHub MCP, resource: "orn:dev:idp:github-mcp", audience: "http://127.0.0.1:7000/mcp", scopes: [repo], token_lifetime: 3600}
        """

    func user(username: String) -> User? { users.first { $0.username == username } }
    func user(id: String) -> User? { users.first { $0.id == id } }
    func webClient(_ id: String) -> WebClient? { webClients.first { $0.clientID == id } }
    func agent(_ id: String) -> Agent? { agents.first { $0.clientID == id } }
    func authorizationServer(_ id: String) -> AuthorizationServer? { authorizationServers.first { $0.id == id } }
    func app(resource: String) -> ThirdPartyApp? { thirdPartyApps.first { $0.resource == resource } }
    func app(id: String) -> ThirdPartyApp? { thirdPartyApps.first { $0.id == id } }
}
