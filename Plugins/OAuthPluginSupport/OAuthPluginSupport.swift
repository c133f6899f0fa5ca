import Foundation
public import OAuthCore
public import PluginAPI

/// Reads the agent's signing key from its identity (PEM from `agent.private_key`).
public enum AgentKey {
    public static func load(_ agent: AgentIdentity?) throws -> (String, SigningKey) {
        guard let agent, let pem = agent.privateKey?.reveal(), !pem.isEmpty else {
            throw PluginConfigError(key: nil, message: "the agent has no private key", hint: "set agent.private_key")
        }
        do {
            return (agent.id, try SigningKey(pem: pem, kid: agent.keyID))
        } catch {
            throw PluginConfigError(key: nil, message: "agent.private_key is not a usable RSA (≥ 2048 bits) or P-256 private key in PEM")
        }
    }
}

/// Token endpoint discovery (cached per issuer) and error mapping shared by the plugins.
public enum TokenEndpoints {
    /// `clock`: the context's (every expiry decision of a plugin uses it, so tests can move it).
    public static func lookup(_ issuer: String, client: TokenEndpointClient, cache: PluginCache, clock: any GatewayClock) async throws -> String {
        let value = try await cache.value(forKey: "token_endpoint " + issuer) {
            let endpoint = try await client.tokenEndpoint(issuer: issuer)
            return (endpoint as any Sendable, CacheLifetime.until(clock.now().addingTimeInterval(3600)))
        }
        return value as? String ?? ""
    }

    public static func failure(_ error: TokenEndpointError) -> StrategyFailure {
        switch error {
        case .unreachable:
            return StrategyFailure(code: "idp_unavailable", message: "the identity provider could not be reached; try again shortly", httpStatus: 503, retryAfter: 5)
        case .oauth(let status, let code, let description, _):
            return StrategyFailure(code: "token_exchange_failed", message: "the identity provider refused the token exchange",
                                   detail: "\(status) \(code)\(description.map { ": \($0)" } ?? "")", httpStatus: 502)
        case .malformed(let status, let why):
            return StrategyFailure(code: "token_exchange_failed", message: "the identity provider answered something unexpected", detail: "\(status): \(why)", httpStatus: 502)
        }
    }
}
