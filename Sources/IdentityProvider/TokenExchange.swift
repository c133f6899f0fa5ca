import Foundation
import OAuthCore

/// RFC 8693 token exchange at the org AS: ID token → ID-JAG, and ID token → OAuth STS token.
extension IdentityProvider {
    static let tokenExchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
    static let idJAGType = "urn:ietf:params:oauth:token-type:id-jag"
    static let stsType = "urn:okta:params:oauth:token-type:oauth-sts"
    static let idTokenType = "urn:ietf:params:oauth:token-type:id_token"

    func tokenExchange(_ form: FormFields, client: AuthenticatedClient) async throws(OAuthError) -> [String: any Sendable] {
        guard case .agent(let agent) = client else {
            throw OAuthError(error: "unauthorized_client", description: "token exchange needs an agent client authenticated with private_key_jwt")
        }
        let requested = try form.required("requested_token_type")
        guard try form.required("subject_token_type") == Self.idTokenType else {
            throw OAuthError.invalidRequest("subject_token_type must be \(Self.idTokenType)")
        }
        let subject = try await verifyIDToken(try form.required("subject_token"), audiences: Set(agent.actsFor))
        switch requested {
        case Self.idJAGType: return try await issueIDJAG(form, agent: agent, subject: subject)
        case Self.stsType: return try await issueSTS(form, agent: agent, subject: subject)
        default: throw OAuthError.invalidRequest("requested_token_type '\(requested)' is not supported (use \(Self.idJAGType) or \(Self.stsType))")
        }
    }

    private func issueIDJAG(_ form: FormFields, agent: IdPConfig.Agent, subject: JWTClaims) async throws(OAuthError) -> [String: any Sendable] {
        let audience = try form.required("audience")
        guard let server = config.authorizationServers.first(where: { asIssuer($0.id) == audience }) else {
            throw OAuthError.invalidTarget("audience '\(audience)' is not a known authorization server")
        }
        let resource = try form.single("resource")
        if let resource, !server.resources.contains(resource) {
            throw OAuthError.invalidTarget("resource '\(resource)' is not registered at \(audience)")
        }
        let scopes = (try form.single("scope") ?? "").split(separator: " ").map(String.init)
        if let unknown = scopes.first(where: { !server.scopes.contains($0) }) {
            throw OAuthError.invalidScope("scope '\(unknown)' is not offered by \(audience)")
        }
        // An agent created through the Management API reaches only the servers it has a managed
        // connection to, for that connection's resource and scopes.
        if let connections = agent.connections {
            guard let connection = connections.first(where: { $0.target == .authorizationServer(server.id) && (resource == nil || $0.resource == nil || $0.resource == resource) }) else {
                throw OAuthError.invalidTarget("agent '\(agent.clientID)' has no managed connection to \(audience)\(resource.map { " for resource '\($0)'" } ?? "")")
            }
            if let allowed = connection.scopes, let beyond = scopes.first(where: { !allowed.contains($0) }) {
                throw OAuthError.invalidScope("scope '\(beyond)' is not in agent '\(agent.clientID)''s managed connection to \(audience)")
            }
        }
        let now = Int(now().timeIntervalSince1970)
        var claims: [String: any Sendable] = [
            "iss": issuer, "sub": subject.subject ?? "", "aud": audience, "client_id": agent.clientID,
            "jti": RandomToken.make(bytes: 16), "iat": now, "exp": now + Int(Self.idJAGLifetime),
        ]
        if let resource { claims["resource"] = resource }
        if !scopes.isEmpty { claims["scope"] = scopes.joined(separator: " ") }
        if let email = subject.email { claims["email"] = email }
        if let uid = subject.uid { claims["uid"] = uid }
        let jag: String
        do { jag = try org.current.sign(claims: claims, type: "oauth-id-jag+jwt") } catch { throw Self.serverError() }
        logger.info("issued ID-JAG", metadata: ["agent": "\(agent.clientID)", "audience": "\(audience)", "sub": "\(subject.subject ?? "")"])
        var answer: [String: any Sendable] = [
            "issued_token_type": Self.idJAGType, "access_token": jag, "token_type": "N_A", "expires_in": Int(Self.idJAGLifetime),
        ]
        if !scopes.isEmpty { answer["scope"] = scopes.joined(separator: " ") }
        return answer
    }

    private func issueSTS(_ form: FormFields, agent: IdPConfig.Agent, subject: JWTClaims) async throws(OAuthError) -> [String: any Sendable] {
        let resource = try form.required("resource")
        guard let app = config.app(resource: resource), let ring = appRings[app.id] else {
            throw OAuthError.invalidTarget("resource '\(resource)' is not a configured third-party app")
        }
        // An agent created through the Management API reaches only the apps it has an STS
        // managed connection to.
        if let connections = agent.connections, !connections.contains(where: { $0.target == .app(app.id) && $0.resource == resource }) {
            throw OAuthError.invalidTarget("agent '\(agent.clientID)' has no managed connection to \(app.name) ('\(resource)')")
        }
        let userID = subject.subject ?? ""
        let consented: Bool
        do { consented = try store.hasConsent(userID: userID, resource: resource, agentID: agent.clientID) } catch { throw Self.serverError() }
        guard consented else {
            let id = RandomToken.make(bytes: 24)
            do {
                try store.createInteraction(id, userID: userID, resource: resource, agentID: agent.clientID, expiresAt: now().addingTimeInterval(Self.interactionLifetime))
            } catch { throw Self.serverError() }
            var e = OAuthError(error: "interaction_required", description: "the user has not yet connected \(app.name): open interaction_uri in their browser, then retry")
            e.extra["interaction_uri"] = issuer + "/oauth2/v1/interaction/" + id
            throw e
        }
        let lifetime = app.tokenLifetime ?? 3600
        let now = Int(now().timeIntervalSince1970)
        let claims: [String: any Sendable] = [
            "iss": appIssuer(app.id), "sub": userID, "aud": app.audience, "client_id": agent.clientID, "scope": app.scopes.joined(separator: " "),
            "jti": RandomToken.make(bytes: 16), "iat": now, "exp": now + lifetime, "resource": resource, "uid": subject.uid ?? userID,
        ]
        let token: String
        do { token = try ring.current.sign(claims: claims, type: "at+jwt") } catch { throw Self.serverError() }
        logger.info("issued STS token", metadata: ["agent": "\(agent.clientID)", "app": "\(app.id)", "sub": "\(userID)"])
        return [
            "issued_token_type": Self.stsType, "access_token": token, "token_type": "Bearer", "expires_in": lifetime,
            "scope": app.scopes.joined(separator: " "),
        ]
    }

    static func serverError() -> OAuthError {
        OAuthError(error: "server_error", description: "the identity provider failed; try again", status: .internalServerError)
    }
}
