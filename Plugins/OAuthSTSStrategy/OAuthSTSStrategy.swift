import Foundation
import OAuthCore
import OAuthPluginSupport
public import PluginAPI

/// The `oauth-sts` strategy (Okta OAuth STS, brokered consent): user ID token → third-party
/// access token for the connection's `resource`. Without the user's consent the IdP answers
/// `interaction_required` with a URI the user must open; the gateway passes it to the agent.
public struct OAuthSTSStrategyFactory: AuthStrategyFactory {
    /// `auth:` parameters.
    public struct Config: Decodable, Sendable {
        /// The managed connection's resource indicator at the IdP (e.g. `orn:okta:idp:…`).
        var resource: String
        /// The org AS token endpoint; default: from the users' issuer's discovery document.
        var tokenEndpoint: String?

        enum CodingKeys: String, CodingKey {
            case resource
            case tokenEndpoint = "token_endpoint"
        }
    }

    public static let id = "oauth-sts"

    public init() {}

    public func validate(_ config: Config, in context: ValidationContext) throws(PluginConfigError) {
        guard !config.resource.isEmpty, !config.resource.contains(where: \.isWhitespace) else {
            throw PluginConfigError(key: "resource", message: "resource must be the connection's resource indicator (no spaces)")
        }
        guard context.agent?.privateKey != nil else {
            throw PluginConfigError(key: nil, message: "oauth-sts needs the agent identity", hint: "add 'agent: {id, key_id, private_key: file:…}' at the top of the file")
        }
    }

    public func requirements(_ config: Config, in context: ValidationContext) -> StrategyRequirements {
        StrategyRequirements(exchangesAtOrg: true, orgTokenEndpoint: config.tokenEndpoint, orgResource: config.resource)
    }

    public func makeStrategy(_ config: Config, context: StrategyContext) async throws -> any AuthStrategy {
        let (agentID, key) = try AgentKey.load(context.agent)
        return OAuthSTSStrategy(config: config, agentID: agentID, key: key)
    }
}

struct OAuthSTSStrategy: AuthStrategy {
    let config: OAuthSTSStrategyFactory.Config
    let agentID: String
    let key: SigningKey

    var credentialScope: CredentialScope { .perUser }
    var statusDetails: [String: String] { ["resource": config.resource] }

    func credential(for request: CredentialRequest, context: StrategyContext) async -> CredentialOutcome {
        let client = TokenEndpointClient(httpClient: context.httpClient)
        do {
            let endpoint: String
            if let configured = config.tokenEndpoint { endpoint = configured } else {
                endpoint = try await TokenEndpoints.lookup(request.caller.issuer, client: client, cache: context.cache, clock: context.clock)
            }
            let token = try await client.request(endpoint, form: [
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                ("requested_token_type", "urn:okta:params:oauth:token-type:oauth-sts"),
                ("subject_token", request.caller.subjectToken.reveal()),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"),
                ("resource", config.resource),
            ] + ClientAssertion.formFields(clientID: agentID, tokenEndpoint: endpoint, key: key, now: context.clock.now()))
            let expires = context.clock.now().addingTimeInterval(TimeInterval(token.expiresIn ?? 3600))
            context.logger.info("third-party token obtained through OAuth STS", metadata: ["reason": "\(request.reason)"])
            return .inject(.bearer(token.accessToken, expiresAt: expires, scopes: token.grantedScopes(fallback: [])))
        } catch let error as TokenEndpointError {
            if case .oauth(_, "interaction_required", let description, let uri?) = error {
                return .interactionRequired(InteractionRequired(
                    uri: uri, message: description ?? "the user must connect this app first: open interaction_uri, then retry"))
            }
            return .failed(TokenEndpoints.failure(error))
        } catch {
            return .failed(StrategyFailure(code: "token_exchange_failed", message: "the token exchange failed", detail: "\(type(of: error))"))
        }
    }
}
