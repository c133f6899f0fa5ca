import Crypto
import Foundation
import OAuthCore

/// OIDC authorization code flow with PKCE (S256 only) for web clients.
extension IdentityProvider {
    /// A checked authorization request (`/oauth2/v1/authorize` parameters).
    struct AuthorizationRequest: Sendable {
        var client: IdPConfig.WebClient
        var redirectURI: String
        var state: String?
        var nonce: String?
        var scope: String
        var codeChallenge: String

        var hiddenFields: [(String, String)] {
            var f: [(String, String)] = [
                ("client_id", client.clientID), ("redirect_uri", redirectURI), ("response_type", "code"), ("scope", scope),
                ("code_challenge", codeChallenge), ("code_challenge_method", "S256"),
            ]
            if let state { f.append(("state", state)) }
            if let nonce { f.append(("nonce", nonce)) }
            return f
        }
    }

    enum AuthorizeProblem: Error {
        /// Cannot redirect (unknown client or redirect URI): show the error to the user.
        case page(String)
        /// Redirect back with `error`.
        case redirect(uri: String, error: String, description: String, state: String?)
    }

    func checkAuthorizationRequest(_ p: FormFields) throws(AuthorizeProblem) -> AuthorizationRequest {
        guard let clientID = p["client_id"], let client = config.webClient(clientID) else { throw .page("Unknown client_id.") }
        guard let redirect = p["redirect_uri"], client.redirectURIs.contains(redirect) else {
            throw .page("The redirect_uri is not registered for this client (it must match exactly).")
        }
        let state = p["state"]
        func fail(_ e: String, _ d: String) -> AuthorizeProblem { .redirect(uri: redirect, error: e, description: d, state: state) }
        guard p["response_type"] == "code" else { throw fail("unsupported_response_type", "only response_type=code is supported") }
        let scope = p["scope"] ?? ""
        guard scope.split(separator: " ").contains("openid") else { throw fail("invalid_scope", "scope must include openid") }
        guard let challenge = p["code_challenge"], challenge.count >= 43, challenge.count <= 128 else {
            throw fail("invalid_request", "PKCE is required: send code_challenge (43-128 characters)")
        }
        guard p["code_challenge_method"] == "S256" else { throw fail("invalid_request", "code_challenge_method must be S256") }
        return AuthorizationRequest(client: client, redirectURI: redirect, state: state, nonce: p["nonce"], scope: scope, codeChallenge: challenge)
    }

    /// Issues a code for a signed-in user and returns the redirect location.
    func issueCode(_ r: AuthorizationRequest, userID: String, authTime: Date) throws -> String {
        let code = RandomToken.make()
        try store.saveCode(code, .init(
            clientID: r.client.clientID, redirectURI: r.redirectURI, userID: userID, codeChallenge: r.codeChallenge, nonce: r.nonce,
            scope: r.scope, authTime: authTime, expiresAt: now().addingTimeInterval(Self.codeLifetime)))
        var items = [URLQueryItem(name: "code", value: code)]
        if let state = r.state { items.append(URLQueryItem(name: "state", value: state)) }
        return Self.append(items, to: r.redirectURI)
    }

    static func append(_ items: [URLQueryItem], to uri: String) -> String {
        var c = URLComponents(string: uri)!
        c.queryItems = (c.queryItems ?? []) + items
        return c.string!
    }

    /// `grant_type=authorization_code`: verifies code, client, redirect URI and PKCE verifier.
    func authorizationCodeGrant(_ form: FormFields, client: AuthenticatedClient) throws(OAuthError) -> [String: any Sendable] {
        guard case .web(let web) = client else { throw OAuthError(error: "unauthorized_client", description: "agents cannot use the authorization code grant") }
        let code = try form.required("code")
        let lookup: IdPStore.CodeLookup
        do { lookup = try store.consumeCode(code) } catch { throw Self.serverError() }
        let record: IdPStore.CodeRecord
        switch lookup {
        case .unknown: throw OAuthError.invalidGrant("the authorization code is invalid")
        case .replayed: throw OAuthError.invalidGrant("the authorization code was already used")
        case .valid(let r): record = r
        }
        guard record.expiresAt > now() else { throw OAuthError.invalidGrant("the authorization code has expired") }
        guard record.clientID == web.clientID else { throw OAuthError.invalidGrant("the authorization code was issued to another client") }
        guard try form.single("redirect_uri") == record.redirectURI else { throw OAuthError.invalidGrant("redirect_uri does not match the authorization request") }
        let verifier = try form.required("code_verifier")
        let computed = Base64URL.encode(Data(SHA256.hash(data: Data(verifier.utf8))))
        guard verifier.count >= 43, verifier.count <= 128, constantTimeEquals(computed, record.codeChallenge) else {
            throw OAuthError.invalidGrant("code_verifier does not match the code_challenge")
        }
        guard let user = config.user(id: record.userID) else { throw OAuthError.invalidGrant("the user no longer exists") }
        let now = Int(now().timeIntervalSince1970)
        var idClaims: [String: any Sendable] = [
            "iss": issuer, "sub": user.id, "aud": web.clientID, "iat": now, "exp": now + Int(Self.idTokenLifetime),
            "auth_time": Int(record.authTime.timeIntervalSince1970), "email": user.email, "name": user.name, "uid": user.id,
            "preferred_username": user.username, "amr": ["pwd"], "jti": RandomToken.make(bytes: 16),
        ]
        if let nonce = record.nonce { idClaims["nonce"] = nonce }
        if let groups = user.groups, !groups.isEmpty { idClaims["groups"] = groups }
        let scopes = record.scope.split(separator: " ").map(String.init)
        let atClaims: [String: any Sendable] = [
            "iss": issuer, "sub": user.id, "aud": issuer, "client_id": web.clientID, "scp": scopes, "uid": user.id,
            "iat": now, "exp": now + Int(Self.idTokenLifetime), "jti": RandomToken.make(bytes: 16),
        ]
        do {
            return [
                "token_type": "Bearer", "expires_in": Int(Self.idTokenLifetime), "scope": record.scope,
                "id_token": try org.current.sign(claims: idClaims, type: "JWT"),
                "access_token": try org.current.sign(claims: atClaims, type: "at+jwt"),
            ]
        } catch {
            throw Self.serverError()
        }
    }

    /// The user behind an org access token (for `/userinfo`).
    func userForAccessToken(_ token: String) async throws(OAuthError) -> IdPConfig.User {
        let verifier = JWTVerifier(policy: .accessToken(issuer: issuer, resource: issuer), keySet: org.keySet)
        let claims: JWTClaims
        do { claims = try await verifier.verify(token) } catch { throw OAuthError.invalidToken(error.message) }
        if let jti = claims.jwtID, (try? store.isRevoked(jti: jti)) == true { throw OAuthError.invalidToken("the token was revoked") }
        guard let sub = claims.subject, let user = config.user(id: sub) else { throw OAuthError.invalidToken("unknown subject") }
        return user
    }
}
