import Foundation
@testable import IdentityProvider
import OAuthCore
import SwitchboardTesting
import Testing

/// A PKCE verifier and its S256 challenge (RFC 7636 §4.2).
typealias PKCE = IdPBrowser.PKCE

extension IdPBrowser.ClientAuthentication {
    /// The web client's own credentials, as HTTP Basic.
    static let valid = IdPBrowser.ClientAuthentication.basic(IdPHarness.webClientID, IdPHarness.webClientSecret)
}

extension IdPHarness {
    static let webClientID = "agent0"
    static let webClientSecret = "agent0-dev-secret"
    static let redirectURI = "http://127.0.0.1:3000/callback"
    static let otherRegisteredRedirectURI = "http://localhost:3000/callback"
    static let todoResource = "http://127.0.0.1:5002/mcp"
    static let githubResource = "orn:dev:idp:github"
    static let passwords = ["alice": "alice-dev-password", "bob": "bob-dev-password"]
    static let userIDs = ["alice": "00u-alice", "bob": "00u-bob"]
    /// Strings no response may ever contain.
    static let secrets = ["agent0-dev-secret", "alice-dev-password", "bob-dev-password", "PRIVATE KEY"]

    static let tokenExchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
    static let jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    static let idJAGType = "urn:ietf:params:oauth:token-type:id-jag"
    static let stsType = "urn:okta:params:oauth:token-type:oauth-sts"
    static let idTokenType = "urn:ietf:params:oauth:token-type:id_token"
    static let defaultMCPScope = "mcp:connect mcp:tools:read"

    var authorizeEndpoint: String { issuer + "/oauth2/v1/authorize" }
    var userinfoEndpoint: String { issuer + "/oauth2/v1/userinfo" }
    var revokeEndpoint: String { issuer + "/oauth2/v1/revoke" }
    var asTokenEndpoint: String { todoAS + "/v1/token" }
    var githubIssuer: String { issuer + "/apps/github" }

    // MARK: browser sign-in (authorization code + PKCE): the shared IdPBrowser, every exchange recorded

    /// The user's browser (the agent0 web client), its requests going through `get`/`post`.
    var browser: IdPBrowser {
        IdPBrowser(
            issuer: issuer, clientID: Self.webClientID, clientSecret: Self.webClientSecret, redirectURI: Self.redirectURI,
            transport: { method, url, headers, body in try await self.send(method, url, headers: headers, body: body) })
    }

    func authorizeParameters(
        pkce: PKCE, state: String = IdPBrowser.newState(), nonce: String = IdPBrowser.newNonce(),
        redirectURI: String = IdPHarness.redirectURI, scope: String = "openid profile email"
    ) -> [(String, String)] {
        browser.authorizeParameters(pkce: pkce, state: state, nonce: nonce, redirectURI: redirectURI, scope: scope)
    }

    func authorizeURL(_ parameters: [(String, String)]) -> String { browser.authorizeURL(parameters) }

    /// Opens the login page for `parameters` and submits it with the given credentials.
    func submitLogin(_ parameters: [(String, String)], username: String, password: String, cookie: String? = nil) async throws -> Answer {
        try await browser.submitLogin(at: authorizeURL(parameters), username: username, password: password, headers: cookie.map { [("Cookie", $0)] } ?? [])
    }

    typealias SignIn = IdPBrowser.Authorization

    /// Signs `user` in through the login page; returns the code and the session cookie.
    func signIn(as user: String = "alice", pkce: PKCE = .make()) async throws -> SignIn {
        try await browser.authorize(user, password: Self.passwords[user] ?? "", pkce: pkce)
    }

    typealias WebClientAuthentication = IdPBrowser.ClientAuthentication

    /// `grant_type=authorization_code` at the org token endpoint.
    func redeem(
        code: String, verifier: String, redirectURI: String = IdPHarness.redirectURI, auth: WebClientAuthentication = .valid,
        extra: [(String, String)] = []
    ) async throws -> Answer {
        try await browser.redeem(code: code, verifier: verifier, redirectURI: redirectURI, auth: auth, extra: extra)
    }

    struct UserTokens {
        var idToken: String
        var accessToken: String
        var cookie: String
    }

    /// Signs `user` in and redeems the code: the user's ID token, access token and session cookie.
    func tokens(for user: String = "alice") async throws -> UserTokens {
        let signIn = try await signIn(as: user)
        let answer = try await redeem(code: signIn.code, verifier: signIn.pkce.verifier)
        guard answer.status == 200, let id = answer.json["id_token"] as? String, let at = answer.json["access_token"] as? String else {
            throw IdPBrowserError("code redemption", answer)
        }
        return UserTokens(idToken: id, accessToken: at, cookie: signIn.cookie)
    }

    // MARK: token exchange and jwt-bearer

    /// A token-exchange request at the org token endpoint; `nil` leaves a parameter out.
    func exchange(
        subjectToken: String, requestedTokenType: String = IdPHarness.idJAGType, audience: String? = nil, resource: String? = IdPHarness.todoResource,
        scope: String? = IdPHarness.defaultMCPScope, auth: [(String, String)]? = nil, grantType: String = IdPHarness.tokenExchangeGrant
    ) async throws -> Answer {
        var form = [("grant_type", grantType), ("requested_token_type", requestedTokenType), ("subject_token", subjectToken),
                    ("subject_token_type", Self.idTokenType)]
        if let audience = audience ?? (requestedTokenType == Self.idJAGType ? todoAS : nil) { form.append(("audience", audience)) }
        if let resource { form.append(("resource", resource)) }
        if let scope { form.append(("scope", scope)) }
        return try await post(tokenEndpoint, form: form + (try auth ?? assertion(for: tokenEndpoint)))
    }

    /// An ID-JAG for the todo-mcp AS.
    func idJAG(for idToken: String, scope: String? = IdPHarness.defaultMCPScope) async throws -> String {
        let answer = try await exchange(subjectToken: idToken, scope: scope)
        guard answer.status == 200, let jag = answer.json["access_token"] as? String else { throw IdPBrowserError("ID-JAG exchange", answer) }
        return jag
    }

    /// The jwt-bearer grant at the todo-mcp AS (or `endpoint`).
    func jwtBearer(_ assertion: String, scope: String? = nil, endpoint: String? = nil, auth: [(String, String)]? = nil) async throws -> Answer {
        let url = endpoint ?? asTokenEndpoint
        var form = [("grant_type", Self.jwtBearerGrant), ("assertion", assertion)]
        if let scope { form.append(("scope", scope)) }
        return try await post(url, form: form + (try auth ?? self.assertion(for: url)))
    }

    /// The OAuth STS exchange for `resource`.
    func sts(_ idToken: String, resource: String = IdPHarness.githubResource) async throws -> Answer {
        try await exchange(subjectToken: idToken, requestedTokenType: Self.stsType, resource: resource, scope: nil)
    }

    /// Runs the STS exchange, expects interaction_required and returns the interaction URI.
    func interactionURI(_ idToken: String, resource: String = IdPHarness.githubResource) async throws -> String {
        let answer = try await sts(idToken, resource: resource)
        guard answer.status == 400, answer.json["error"] as? String == "interaction_required", let uri = answer.json["interaction_uri"] as? String else {
            throw IdPBrowserError("STS exchange (expecting interaction_required)", answer)
        }
        return uri
    }

    /// Opens the consent page as the holder of `cookie`.
    func consentPage(_ uri: String, cookie: String?) async throws -> Answer { try await browser.consentPage(uri, cookie: cookie) }

    /// Posts the consent decision.
    func decide(_ uri: String, cookie: String?, csrf: String, decision: String) async throws -> Answer {
        try await browser.decide(uri, cookie: cookie, csrf: csrf, decision: decision)
    }

    /// The full browser consent: open the page as the signed-in user and approve.
    func approve(_ uri: String, cookie: String) async throws { try await browser.approve(uri, cookie: cookie) }

    // MARK: keys

    /// A signing key the IdP keeps in its database (`org`, `as:todo-mcp`, `app:github`), to forge
    /// tokens that carry a genuine signature but claims the IdP would never issue.
    func storedSigningKey(owner: String) throws -> SigningKey {
        let store = try IdPStore(path: dataDirectory + "/idp.sqlite")
        guard let stored = try store.signingKeys(owner: owner).last(where: { $0.retiredAt == nil }) else { throw StepFailed("no key for \(owner)") }
        return try SigningKey(pem: stored.pem, kid: stored.kid)
    }

    /// The kids of a published JWKS.
    func kids(at jwksURL: String) async throws -> [String] {
        let answer = try await get(jwksURL)
        guard answer.status == 200, let keys = answer.json["keys"] as? [[String: Any]] else { throw IdPBrowserError("JWKS", answer) }
        return keys.compactMap { $0["kid"] as? String }
    }

    /// A client assertion with arbitrary claims (defaults: a valid one for `endpoint`).
    func customAssertion(
        endpoint: String, key: SigningKey? = nil, issuer iss: String = IdPHarness.agentID, subject: String = IdPHarness.agentID,
        issuedAt: Int? = Int(Date().timeIntervalSince1970), lifetime: Int = 120, jti: String = UUID().uuidString
    ) throws -> [(String, String)] {
        var claims: [String: any Sendable] = ["iss": iss, "sub": subject, "aud": endpoint, "jti": jti,
                                              "exp": (issuedAt ?? Int(Date().timeIntervalSince1970)) + lifetime]
        if let issuedAt { claims["iat"] = issuedAt }
        return [("client_assertion_type", ClientAssertion.type), ("client_assertion", try (key ?? agentKey).sign(claims: claims, type: "JWT"))]
    }

    // MARK: verification

    func verifyIDToken(_ token: String) async throws -> JWTClaims {
        let keys = JWKSKeySet(issuer: issuer, httpClient: TestHTTP.client)
        return try await JWTVerifier(policy: .idToken(issuer: issuer, clientID: Self.webClientID), keySet: keys).verify(token)
    }

    // MARK: checks every test ends with

    /// PROTOCOLS.md: every API error is JSON with `error` and `error_description` and `Cache-Control:
    /// no-store`; token endpoint answers are never cached; browser pages are not cached either;
    /// no answer contains a client secret, a password or a private key.
    func checkEveryResponse(sourceLocation: SourceLocation) {
        for e in exchanges.withLock({ $0 }) {
            let a = e.answer
            let what = "\(e.method) \(e.url) → \(a.status)"
            for secret in Self.secrets {
                #expect(!a.body.contains(secret), "\(what): the body contains '\(secret)'", sourceLocation: sourceLocation)
            }
            let path = URLComponents(string: e.url)?.path ?? ""
            let cacheControl = a.headers.first(name: "Cache-Control")
            let contentType = a.headers.first(name: "Content-Type") ?? ""
            if path == "/oauth2/v1/authorize" || path.hasPrefix("/oauth2/v1/interaction/") {
                #expect(cacheControl == "no-store", "\(what): Cache-Control \(cacheControl ?? "(none)")", sourceLocation: sourceLocation)
                if a.status != 302 { #expect(contentType.hasPrefix("text/html"), "\(what): Content-Type \(contentType)", sourceLocation: sourceLocation) }
            } else if a.status >= 400 {
                #expect(contentType.hasPrefix("application/json"), "\(what): Content-Type \(contentType)", sourceLocation: sourceLocation)
                #expect(cacheControl == "no-store", "\(what): Cache-Control \(cacheControl ?? "(none)")", sourceLocation: sourceLocation)
                #expect((a.json["error"] as? String)?.isEmpty == false, "\(what): no error code in \(a.body)", sourceLocation: sourceLocation)
                #expect((a.json["error_description"] as? String)?.isEmpty == false, "\(what): no error_description in \(a.body)", sourceLocation: sourceLocation)
            } else if path.hasSuffix("/token") || path.hasSuffix("/revoke") || path.hasSuffix("/userinfo") {
                #expect(cacheControl == "no-store", "\(what): Cache-Control \(cacheControl ?? "(none)")", sourceLocation: sourceLocation)
            }
        }
    }
}

/// Starts an IdP, runs `body`, checks every answer it gave (see `checkEveryResponse`) and stops it.
func withIdP(sourceLocation: SourceLocation = #_sourceLocation, _ body: (IdPHarness) async throws -> Void) async throws {
    let idp = try await IdPHarness.start()
    try await withCleanup({ try await body(idp) }, cleanup: {
        idp.checkEveryResponse(sourceLocation: sourceLocation)
        await idp.stop()
    })
}

/// Asserts an OAuth error answer: status and `error` code.
func expectError(
    _ answer: IdPHarness.Answer, _ code: String, status: Int = 400, sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(answer.status == status, "expected \(status) \(code), got \(answer.status) \(answer.body)", sourceLocation: sourceLocation)
    #expect(answer.json["error"] as? String == code, "expected error \(code), got \(answer.body)", sourceLocation: sourceLocation)
}
