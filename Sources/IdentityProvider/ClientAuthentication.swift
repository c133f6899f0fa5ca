import Foundation
import HTTPTypes
import OAuthCore

/// Who called a token endpoint.
enum AuthenticatedClient: Sendable {
    case web(IdPConfig.WebClient)
    case agent(IdPConfig.Agent)

    var id: String {
        switch self {
        case .web(let c): return c.clientID
        case .agent(let a): return a.clientID
        }
    }
}

extension IdentityProvider {
    /// Authenticates the client of a token request: private_key_jwt (agents), or
    /// client_secret_basic / client_secret_post (web clients). Every failure is 401 invalid_client.
    func authenticateClient(_ form: FormFields, headers: HTTPFields, tokenEndpoint: String) async throws(OAuthError) -> AuthenticatedClient {
        if let assertionType = try form.single("client_assertion_type") {
            guard assertionType == ClientAssertion.type else {
                throw OAuthError.invalidClient("client_assertion_type must be \(ClientAssertion.type)")
            }
            return .agent(try await verifyClientAssertion(form, tokenEndpoint: tokenEndpoint))
        }
        var id: String?
        var secret: String?
        if let auth = headers[.authorization], auth.lowercased().hasPrefix("basic ") {
            guard let data = Data(base64Encoded: String(auth.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
                  let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":")
            else { throw OAuthError.invalidClient("malformed Basic credentials") }
            id = String(text[..<colon]).removingPercentEncoding
            secret = String(text[text.index(after: colon)...]).removingPercentEncoding
        } else {
            id = try form.single("client_id")
            secret = try form.single("client_secret")
        }
        guard let id, let secret, !id.isEmpty else {
            throw OAuthError.invalidClient("client authentication is required (private_key_jwt, client_secret_basic or client_secret_post)")
        }
        guard let client = config.webClient(id), constantTimeEquals(client.clientSecret, secret) else {
            throw OAuthError.invalidClient("unknown client or wrong client secret")
        }
        return .web(client)
    }

    /// RFC 7523 §3: signature by the agent's registered key, iss = sub = client id, aud = this
    /// token endpoint, exp in the future and at most 1 h away, jti never reused.
    private func verifyClientAssertion(_ form: FormFields, tokenEndpoint: String) async throws(OAuthError) -> IdPConfig.Agent {
        let assertion = try form.required("client_assertion")
        guard let peek = JWTPeek.unverifiedClaims(assertion), let iss = peek["iss"] as? String else {
            throw OAuthError.invalidClient("client_assertion is not a JWT with an iss claim")
        }
        if let claimed = try form.single("client_id"), claimed != iss {
            throw OAuthError.invalidClient("client_id does not match the assertion's issuer")
        }
        guard let agent = config.agent(iss) else { throw OAuthError.invalidClient("unknown client '\(iss)'") }
        let keys: StaticKeySet
        do { keys = try await agentKeySet(agent) } catch { throw OAuthError.invalidClient("the client has no usable registered key") }
        let policy = TokenPolicy(issuer: iss, audiences: [tokenEndpoint], types: [nil, "JWT"], maxLifetime: .seconds(3600))
        let claims: JWTClaims
        do {
            claims = try await JWTVerifier(policy: policy, keySet: keys).verify(assertion)
        } catch {
            let hint = error.code == .wrongAudience ? " (aud must be exactly \(tokenEndpoint))" : ""
            throw OAuthError.invalidClient("client_assertion rejected: \(error.message)\(hint)")
        }
        guard claims.subject == iss else { throw OAuthError.invalidClient("client_assertion sub must equal iss (the client id)") }
        guard claims.expiresAt.timeIntervalSince(now()) <= 3600 + Self.skew else {
            throw OAuthError.invalidClient("client_assertion exp is more than 1 hour away")
        }
        guard let jti = claims.jwtID, !jti.isEmpty else { throw OAuthError.invalidClient("client_assertion has no jti") }
        let fresh: Bool
        do { fresh = try store.useOnce(scope: "assertion:\(iss)", jti: jti, expiresAt: claims.expiresAt.addingTimeInterval(Self.skew), now: now()) } catch {
            throw OAuthError(error: "server_error", description: "could not record the assertion", status: .internalServerError)
        }
        guard fresh else { throw OAuthError.invalidClient("client_assertion jti was already used") }
        return agent
    }
}
