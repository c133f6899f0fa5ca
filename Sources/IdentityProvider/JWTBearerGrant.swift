import Foundation
import OAuthCore

/// RFC 7523 JWT-bearer grant at a custom authorization server: ID-JAG → access token.
extension IdentityProvider {
    static let jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

    func jwtBearer(_ form: FormFields, client: AuthenticatedClient, server: IdPConfig.AuthorizationServer) async throws(OAuthError) -> [String: any Sendable] {
        guard case .agent(let agent) = client else {
            throw OAuthError(error: "unauthorized_client", description: "the jwt-bearer grant needs an agent client authenticated with private_key_jwt")
        }
        let asIssuer = asIssuer(server.id)
        let assertion = try form.required("assertion")
        // typ, alg allow-list, iss + kid in the org JWKS, aud contains this issuer, exp/iat skew, lifetime.
        let policy = TokenPolicy(issuer: issuer, audiences: [asIssuer], types: ["oauth-id-jag+jwt"], maxLifetime: .seconds(600))
        let jag: JWTClaims
        do {
            jag = try await JWTVerifier(policy: policy, keySet: org.keySet).verify(assertion)
        } catch {
            throw OAuthError.invalidGrant("the ID-JAG was rejected: \(error.message)")
        }
        guard jag.audience == [asIssuer] else { throw OAuthError.invalidGrant("the ID-JAG's aud must be exactly this issuer, as a single value") }
        guard jag.clientID == agent.clientID else { throw OAuthError.invalidGrant("the ID-JAG was issued to another client (client_id mismatch)") }
        guard let jti = jag.jwtID, !jti.isEmpty else { throw OAuthError.invalidGrant("the ID-JAG has no jti") }
        let resource = jag.resource ?? server.resources.first ?? asIssuer
        guard server.resources.contains(resource) else { throw OAuthError.invalidTarget("resource '\(resource)' is not registered at this authorization server") }
        let fresh: Bool
        do { fresh = try store.useOnce(scope: "id-jag:\(server.id)", jti: jti, expiresAt: jag.expiresAt.addingTimeInterval(Self.skew), now: now()) } catch {
            throw Self.serverError()
        }
        guard fresh else { throw OAuthError.invalidGrant("the ID-JAG was already used (jti replay)") }

        // Scope policy: default scopes always; on-request scopes only when explicitly asked for.
        let asked = Set(((try form.single("scope")) ?? jag.scopes.joined(separator: " ")).split(separator: " ").map(String.init))
        if let unknown = asked.first(where: { !server.scopes.contains($0) }) {
            throw OAuthError.invalidScope("scope '\(unknown)' is not offered by this authorization server")
        }
        // The ID-JAG carries what the IdP authorized: a token request cannot widen it.
        if !jag.scopes.isEmpty, let beyond = asked.subtracting(server.defaultScopes).first(where: { !jag.scopes.contains($0) }) {
            throw OAuthError.invalidScope("scope '\(beyond)' was not authorized in the ID-JAG; request it in the token exchange")
        }
        // A server created through the Management API: its access policy must allow this client,
        // this grant and these scopes (Okta's wording for a refusal).
        var lifetime = server.tokenLifetime ?? 3600
        if let rules = server.accessRules {
            guard let rule = rules.first(where: { $0.allows(client: agent.clientID, grant: Self.jwtBearerGrant, scopes: asked) }) else {
                throw OAuthError(error: "access_denied", description: "Policy evaluation failed for this request, please check the policy configurations.")
            }
            lifetime = rule.tokenLifetime ?? lifetime
        }
        var granted = Set(server.defaultScopes)
        granted.formUnion(asked.intersection(server.onRequestScopes))
        granted.formUnion(asked.intersection(server.scopes).subtracting(server.onRequestScopes))
        let scopes = server.scopes.filter(granted.contains)
        guard let ring = try? await asRing(server.id) else { throw Self.serverError() }
        let now = Int(now().timeIntervalSince1970)
        let claims: [String: any Sendable] = [
            "iss": asIssuer, "sub": jag.subject ?? "", "aud": resource, "scp": scopes, "client_id": agent.clientID,
            "act": ["sub": agent.clientID], "uid": jag.uid ?? (jag.subject ?? ""), "jti": RandomToken.make(bytes: 16),
            "iat": now, "exp": now + lifetime,
        ]
        let token: String
        do { token = try ring.current.sign(claims: claims, type: "at+jwt") } catch { throw Self.serverError() }
        logger.info("issued access token", metadata: ["as": "\(server.id)", "agent": "\(agent.clientID)", "scope": "\(scopes.joined(separator: " "))"])
        return ["token_type": "Bearer", "access_token": token, "expires_in": lifetime, "scope": scopes.joined(separator: " ")]
    }
}
