import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OAuthCore

/// HTTP routes of the IdP, paths as Okta names them.
struct IdPRoutes: Sendable {
    let idp: IdentityProvider
    static let sessionCookie = "sb_idp_session"

    func register(on router: Router<BasicRequestContext>) {
        router.get("/.well-known/openid-configuration") { _, _ in jsonResponse(orgMetadata()) }
        router.get("/.well-known/oauth-authorization-server") { _, _ in jsonResponse(orgMetadata()) }
        router.get("/oauth2/v1/keys") { _, _ in jwksResponse(idp.org.jwks) }
        router.get("/oauth2/v1/authorize") { request, _ in await authorizeGet(request) }
        router.post("/oauth2/v1/authorize") { request, _ in await authorizePost(request) }
        router.post("/oauth2/v1/token") { request, _ in await orgToken(request) }
        router.get("/oauth2/v1/userinfo") { request, _ in await userinfo(request) }
        router.post("/oauth2/v1/userinfo") { request, _ in await userinfo(request) }
        router.get("/oauth2/v1/logout") { request, _ in logout(request) }
        router.post("/oauth2/v1/revoke") { request, _ in await revoke(request) }
        router.get("/oauth2/v1/interaction/:id") { request, context in await interactionPage(request, id: context.parameters.get("id") ?? "") }
        router.post("/oauth2/v1/interaction/:id") { request, context in await interactionDecision(request, id: context.parameters.get("id") ?? "") }
        router.get("/oauth2/:as/.well-known/oauth-authorization-server") { _, context in asMetadata(context.parameters.get("as") ?? "") }
        router.get("/oauth2/:as/.well-known/openid-configuration") { _, context in asMetadata(context.parameters.get("as") ?? "") }
        // RFC 8414 §3.1: the well-known segment inserted before the issuer's path.
        router.get("/.well-known/oauth-authorization-server/oauth2/:as") { _, context in asMetadata(context.parameters.get("as") ?? "") }
        router.get("/oauth2/:as/v1/keys") { _, context in
            guard let ring = try? await idp.asRing(context.parameters.get("as") ?? "") else { return notFound() }
            return jwksResponse(ring.jwks)
        }
        router.post("/oauth2/:as/v1/token") { request, context in await asToken(request, asID: context.parameters.get("as") ?? "") }
        router.get("/apps/:app/.well-known/oauth-authorization-server") { _, context in
            let id = context.parameters.get("app") ?? ""
            guard idp.appRings[id] != nil else { return notFound() }
            return jsonResponse(["issuer": idp.appIssuer(id), "jwks_uri": idp.appIssuer(id) + "/keys"])
        }
        router.get("/apps/:app/keys") { _, context in
            guard let ring = idp.appRings[context.parameters.get("app") ?? ""] else { return notFound() }
            return jwksResponse(ring.jwks)
        }
        router.get("/healthz") { _, _ in jsonResponse(["status": "ok"]) }
    }

    // MARK: metadata

    func orgMetadata() -> [String: any Sendable] {
        let i = idp.issuer
        return [
            "issuer": i, "authorization_endpoint": i + "/oauth2/v1/authorize", "token_endpoint": i + "/oauth2/v1/token",
            "userinfo_endpoint": i + "/oauth2/v1/userinfo", "jwks_uri": i + "/oauth2/v1/keys", "end_session_endpoint": i + "/oauth2/v1/logout",
            "revocation_endpoint": i + "/oauth2/v1/revoke", "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"], "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"], "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", IdentityProvider.tokenExchangeGrant],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "email", "name", "uid", "preferred_username", "groups"],
        ]
    }

    func asMetadata(_ id: String) -> Response {
        guard idp.config.authorizationServer(id) != nil else { return notFound() }
        let i = idp.asIssuer(id)
        return jsonResponse([
            "issuer": i, "token_endpoint": i + "/v1/token", "jwks_uri": i + "/v1/keys", "grant_types_supported": [IdentityProvider.jwtBearerGrant],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"], "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
            "scopes_supported": idp.config.authorizationServer(id)?.scopes ?? [],
            "response_types_supported": [String](),  // RFC 8414 requires the member; this AS has no authorization endpoint
        ])
    }

    func jwksResponse(_ json: String) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "max-age=60"], body: .init(byteBuffer: ByteBuffer(string: json)))
    }

    func notFound() -> Response { OAuthError(error: "not_found", description: "no such resource", status: .notFound).response() }

    // MARK: token endpoints

    func orgToken(_ request: Request) async -> Response {
        do throws(OAuthError) {
            let form = try await FormFields.read(request)
            let grant = try form.required("grant_type")
            let client = try await idp.authenticateClient(form, headers: request.headers, tokenEndpoint: idp.tokenEndpoint)
            switch grant {
            case "authorization_code": return jsonResponse(try idp.authorizationCodeGrant(form, client: client))
            case IdentityProvider.tokenExchangeGrant: return jsonResponse(try await idp.tokenExchange(form, client: client))
            default: throw OAuthError.unsupportedGrantType("grant_type '\(grant)' is not supported here (use authorization_code or token exchange)")
            }
        } catch {
            return error.response()
        }
    }

    func asToken(_ request: Request, asID: String) async -> Response {
        guard let server = idp.config.authorizationServer(asID) else { return notFound() }
        do throws(OAuthError) {
            let form = try await FormFields.read(request)
            let grant = try form.required("grant_type")
            let client = try await idp.authenticateClient(form, headers: request.headers, tokenEndpoint: idp.asTokenEndpoint(asID))
            guard grant == IdentityProvider.jwtBearerGrant else {
                throw OAuthError.unsupportedGrantType("this authorization server accepts only \(IdentityProvider.jwtBearerGrant)")
            }
            return jsonResponse(try await idp.jwtBearer(form, client: client, server: server))
        } catch {
            return error.response()
        }
    }

    // MARK: login and sessions

    func currentUser(_ request: Request) -> (IdPConfig.User, Date, String)? {
        guard let id = request.cookies[Self.sessionCookie]?.value,
              let s = try? idp.store.session(id, now: idp.now()), let user = idp.config.user(id: s.userID) else { return nil }
        return (user, s.authTime, id)
    }

    /// `redirectsTo`: the registered redirect URI a form on this page ends at. Browsers apply
    /// `form-action` to the redirects after a form post too, so the sign-in form's 302 to the
    /// client would be blocked with `'self'` alone; that one origin is added, nothing wider.
    func html(_ text: String, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:], redirectsTo: String? = nil) -> Response {
        var h = headers
        h[.contentType] = "text/html; charset=utf-8"
        h[.cacheControl] = "no-store"
        h[HTTPField.Name("X-Frame-Options")!] = "DENY"
        var formAction = "'self'"
        if let redirectsTo, let url = URL(string: redirectsTo), let scheme = url.scheme, let host = url.host {
            formAction += " \(scheme)://\(host)" + (url.port.map { ":\($0)" } ?? "")
        }
        h[HTTPField.Name("Content-Security-Policy")!] = "default-src 'none'; style-src 'unsafe-inline'; form-action \(formAction); frame-ancestors 'none'; base-uri 'none'"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func redirect(_ location: String, cookie: String? = nil) -> Response {
        var h: HTTPFields = [.location: location, .cacheControl: "no-store"]
        if let cookie { h[.setCookie] = cookie }
        return Response(status: .found, headers: h)
    }

    func problemResponse(_ p: IdentityProvider.AuthorizeProblem) -> Response {
        switch p {
        case .page(let text): return html(HTMLPages.message("Sign-in request rejected", text), status: .badRequest)
        case .redirect(let uri, let error, let description, let state):
            var items = [URLQueryItem(name: "error", value: error), URLQueryItem(name: "error_description", value: description)]
            if let state { items.append(URLQueryItem(name: "state", value: state)) }
            return redirect(IdentityProvider.append(items, to: uri))
        }
    }

    func authorizeGet(_ request: Request) async -> Response {
        let params = FormFields(request.uri.query ?? "")
        let authz: IdentityProvider.AuthorizationRequest
        do { authz = try idp.checkAuthorizationRequest(params) } catch { return problemResponse(error) }
        if params["prompt"] != "login", let (user, authTime, _) = currentUser(request) {
            guard let location = try? idp.issueCode(authz, userID: user.id, authTime: authTime) else { return html(HTMLPages.message("Error", "Try again."), status: .internalServerError) }
            return redirect(location)
        }
        if params["prompt"] == "none" {
            return problemResponse(.redirect(uri: authz.redirectURI, error: "login_required", description: "the user is not signed in", state: authz.state))
        }
        return html(HTMLPages.login(hidden: authz.hiddenFields, error: nil, users: idp.config.users.map(\.username)), redirectsTo: authz.redirectURI)
    }

    func authorizePost(_ request: Request) async -> Response {
        // Login CSRF: a page elsewhere must not sign the browser in as someone (the attacker).
        guard !Self.isCrossOrigin(request) else {
            idp.logger.notice("sign-in form posted from another origin: refused")
            return html(HTMLPages.message("Sign-in refused", "The sign-in form was sent from another site. Open the sign-in page again."), status: .forbidden)
        }
        guard let form = try? await FormFields.read(request) else { return html(HTMLPages.message("Error", "Bad form."), status: .badRequest) }
        let authz: IdentityProvider.AuthorizationRequest
        do { authz = try idp.checkAuthorizationRequest(form) } catch { return problemResponse(error) }
        guard let username = form["username"], let password = form["password"], let user = idp.config.user(username: username),
              constantTimeEquals(user.password, password)
        else {
            idp.logger.notice("failed sign-in", metadata: ["username": "\(form["username"] ?? "")"])
            return html(HTMLPages.login(hidden: authz.hiddenFields, error: "Wrong username or password.", users: idp.config.users.map(\.username)), status: .unauthorized,
                        redirectsTo: authz.redirectURI)
        }
        let sessionID = RandomToken.make()
        let now = idp.now()
        do {
            try idp.store.createSession(sessionID, userID: user.id, authTime: now, expiresAt: now.addingTimeInterval(IdentityProvider.sessionLifetime))
            let location = try idp.issueCode(authz, userID: user.id, authTime: now)
            idp.logger.info("signed in", metadata: ["user": "\(user.username)", "client": "\(authz.client.clientID)"])
            return redirect(location, cookie: sessionCookieHeader(sessionID, maxAge: Int(IdentityProvider.sessionLifetime)))
        } catch {
            return html(HTMLPages.message("Error", "Try again."), status: .internalServerError)
        }
    }

    /// Whether a browser sent `request` from a page of another origin — the check Go's
    /// `http.CrossOriginProtection` makes: `Sec-Fetch-Site` when the browser sends it (every
    /// current one does), else an `Origin` whose host is not this request's `Host` (`null`
    /// included). A request with neither comes from no browser page (curl, a test client), and
    /// cannot be forged by a page the user visits.
    static func isCrossOrigin(_ request: Request) -> Bool {
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!] {
            return site != "same-origin" && site != "none"
        }
        guard let origin = request.headers[HTTPField.Name("Origin")!] else { return false }
        guard let url = URL(string: origin), let host = url.host, let authority = request.head.authority else { return true }
        return (url.port.map { "\(host):\($0)" } ?? host).lowercased() != authority.lowercased()
    }

    func sessionCookieHeader(_ value: String, maxAge: Int) -> String {
        "\(Self.sessionCookie)=\(value); Path=/; HttpOnly; SameSite=Lax; Max-Age=\(maxAge)"
    }

    func logout(_ request: Request) -> Response {
        if let (_, _, id) = currentUser(request) { try? idp.store.deleteSession(id) }
        let params = FormFields(request.uri.query ?? "")
        let cleared = sessionCookieHeader("", maxAge: 0)
        if let target = params["post_logout_redirect_uri"],
           idp.config.webClients.contains(where: { ($0.postLogoutRedirectURIs ?? []).contains(target) }) {
            var items: [URLQueryItem] = []
            if let state = params["state"] { items.append(URLQueryItem(name: "state", value: state)) }
            return redirect(items.isEmpty ? target : IdentityProvider.append(items, to: target), cookie: cleared)
        }
        var h: HTTPFields = [:]
        h[.setCookie] = cleared
        return html(HTMLPages.message("Signed out", "You are signed out."), headers: h)
    }

    func userinfo(_ request: Request) async -> Response {
        guard let auth = request.headers[.authorization], auth.lowercased().hasPrefix("bearer ") else {
            return OAuthError.invalidToken("send the access token as Authorization: Bearer").response()
        }
        do {
            let user = try await idp.userForAccessToken(String(auth.dropFirst(7)))
            return jsonResponse(["sub": user.id, "name": user.name, "email": user.email, "preferred_username": user.username, "uid": user.id])
        } catch {
            return error.response()
        }
    }
}
