import Foundation
import OAuthCore
import OAuthPluginSupport
public import PluginAPI

/// The `idjag` strategy: user ID token → ID-JAG (token exchange at the org AS) → access
/// token (JWT-bearer grant at the connection's authorization server), injected as
/// `Authorization: Bearer`. Supports scope step-up.
public struct IDJAGStrategyFactory: AuthStrategyFactory {
    /// `auth:` parameters.
    public struct Config: Decodable, Sendable {
        /// Name of the `authorization_server` connection that issues the access tokens.
        var authorizationServer: String
        /// Scopes asked for on the first call (step-up widens them per user).
        var scopes: [String]
        /// The org AS token endpoint; default: from the users' issuer's discovery document.
        var tokenEndpoint: String?

        enum CodingKeys: String, CodingKey {
            case authorizationServer = "authorization_server"
            case scopes
            case tokenEndpoint = "token_endpoint"
        }
    }

    public static let id = "idjag"

    public init() {}

    public func validate(_ config: Config, in context: ValidationContext) throws(PluginConfigError) {
        guard let server = context.lookup(config.authorizationServer) else {
            throw PluginConfigError(key: "authorization_server", message: "no connection named '\(config.authorizationServer)'",
                                    hint: "name an authorization_server connection of this file")
        }
        guard server.kind == .authorizationServer, server.issuer != nil else {
            throw PluginConfigError(key: "authorization_server", message: "'\(config.authorizationServer)' is a \(server.kind.rawValue), not an authorization_server")
        }
        guard !config.scopes.isEmpty, config.scopes.allSatisfy({ !$0.isEmpty && !$0.contains(" ") }) else {
            throw PluginConfigError(key: "scopes", message: "scopes must be a non-empty list of scope names", hint: "e.g. [mcp:connect, mcp:tools:read]")
        }
        guard let agent = context.agent, agent.privateKey != nil else {
            throw PluginConfigError(key: nil, message: "idjag needs the agent identity", hint: "add 'agent: {id, key_id, private_key: file:…}' at the top of the file")
        }
        _ = agent
    }

    public func requirements(_ config: Config, in context: ValidationContext) -> StrategyRequirements {
        StrategyRequirements(
            authorizationServer: config.authorizationServer, scopes: config.scopes, exchangesAtOrg: true, orgTokenEndpoint: config.tokenEndpoint,
            protectedResource: context.connection.resourceIndicator ?? context.connection.upstream)
    }

    public func makeStrategy(_ config: Config, context: StrategyContext) async throws -> any AuthStrategy {
        let key = try AgentKey.load(context.agent)
        guard let server = context.lookup(config.authorizationServer), let issuer = server.issuer else {
            throw PluginConfigError(key: "authorization_server", message: "unknown authorization server")
        }
        return IDJAGStrategy(config: config, agentID: key.0, key: key.1, asName: server.name, asIssuer: issuer,
                             resource: context.connection.resourceIndicator ?? context.connection.upstream ?? "")
    }
}

struct IDJAGStrategy: AuthStrategy {
    let config: IDJAGStrategyFactory.Config
    let agentID: String
    let key: SigningKey
    let asName: String
    let asIssuer: String
    let resource: String

    var credentialScope: CredentialScope { .perUser }

    var statusDetails: [String: String] {
        ["authorization_server": asName, "authorization_server_issuer": asIssuer, "scopes": config.scopes.joined(separator: " ")]
    }

    func credential(for request: CredentialRequest, context: StrategyContext) async -> CredentialOutcome {
        let scopes = request.scopes ?? Set(config.scopes)
        let client = TokenEndpointClient(httpClient: context.httpClient)
        do {
            let orgEndpoint: String
            if let configured = config.tokenEndpoint { orgEndpoint = configured } else {
                orgEndpoint = try await TokenEndpoints.lookup(request.caller.issuer, client: client, cache: context.cache, clock: context.clock)
            }
            let scopeList = scopes.sorted().joined(separator: " ")
            let jag = try await client.request(orgEndpoint, form: [
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                ("requested_token_type", "urn:ietf:params:oauth:token-type:id-jag"),
                ("subject_token", request.caller.subjectToken.reveal()),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"),
                ("audience", asIssuer), ("resource", resource), ("scope", scopeList),
            ] + ClientAssertion.formFields(clientID: agentID, tokenEndpoint: orgEndpoint, key: key, now: context.clock.now()))
            context.reportUse(asName, context.clock.now().addingTimeInterval(TimeInterval(jag.expiresIn ?? 300)))
            let asEndpoint = try await TokenEndpoints.lookup(asIssuer, client: client, cache: context.cache, clock: context.clock)
            let token = try await client.request(asEndpoint, form: [
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", jag.accessToken), ("scope", scopeList),
            ] + ClientAssertion.formFields(clientID: agentID, tokenEndpoint: asEndpoint, key: key, now: context.clock.now()))
            let expires = context.clock.now().addingTimeInterval(TimeInterval(token.expiresIn ?? 300))
            context.logger.info("access token obtained through ID-JAG", metadata: ["scope": "\(token.scope ?? scopeList)", "reason": "\(request.reason)"])
            return .inject(.bearer(token.accessToken, expiresAt: expires, scopes: token.grantedScopes(fallback: scopes)))
        } catch let error as TokenEndpointError {
            return .failed(TokenEndpoints.failure(error))
        } catch {
            return .failed(StrategyFailure(code: "token_exchange_failed", message: "the token exchange failed", detail: "\(type(of: error))"))
        }
    }

    func stepUp(for challenge: ScopeChallenge, held: Credential) -> StepUpDecision {
        let wanted = held.scopes.union(challenge.requiredScopes)
        guard wanted != held.scopes else { return .notPossible(reason: "the token already holds every scope the upstream named") }
        return .possible(scopes: wanted)
    }
}

