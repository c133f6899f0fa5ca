import Foundation
import HTTPTypes
import Hummingbird
import Logging
import OAuthCore

/// `/login`, `/callback`, `/logout`, `/auth/status`: OIDC authorization code with PKCE, state
/// and nonce; a server-side session behind an opaque cookie.
struct AuthRoutes: Sendable {
    let agent: Agent0

    func register(on router: Router<BasicRequestContext>) {
        router.get("/login") { _, _ in await login() }
        router.get("/callback") { request, _ in await callback(request) }
        router.post("/logout") { request, _ in await logout(request) }
        router.get("/auth/status") { request, _ in await status(request) }
    }

    func login() async -> Response {
        let pending = PendingSignIn.make()
        let url: String
        do throws(OIDCClient.Failure) {
            url = try await agent.oidc.authorizationURL(for: pending, redirectURI: agent.redirectURI, scopes: agent.options.scopes)
        } catch {
            return Self.failure(error).response()
        }
        let loginID = await agent.sessions.addPending(pending)
        let maxAge = Int(agent.options.loginTimeout.components.seconds)
        return Response(status: .found, headers: [
            .location: url, .cacheControl: "no-store", .setCookie: Cookies.set(Cookies.login, loginID, maxAge: maxAge, secure: agent.secureCookies),
        ])
    }

    func callback(_ request: Request) async -> Response {
        let query = request.uri.queryParameters
        let clearLogin = Cookies.clear(Cookies.login, secure: agent.secureCookies)
        func refuse(_ e: AgentError) -> Response {
            var r = e.response()
            r.headers[.setCookie] = clearLogin
            return r
        }
        // The verifier, state and nonce of this browser's sign-in; taken once.
        guard let loginID = Cookies.value(Cookies.login, in: request.headers[.cookie]), let pending = await agent.sessions.takePending(loginID) else {
            return refuse(AgentError(code: "login_expired", status: .badRequest,
                                     message: "no sign-in is in progress in this browser (or it expired), so there is no PKCE verifier for this code: start again at /login"))
        }
        guard let state = query["state"].map(String.init), constantTimeEquals(state, pending.state) else {
            return refuse(AgentError(code: "invalid_state", status: .badRequest, message: "the state does not match this browser's sign-in: start again at /login"))
        }
        if let error = query["error"].map(String.init) {
            let description = query["error_description"].map(String.init) ?? error
            return refuse(AgentError(code: error == "access_denied" ? "access_denied" : "sign_in_failed", status: .badRequest, message: "the identity provider said: \(description)"))
        }
        guard let code = query["code"].map(String.init), !code.isEmpty else {
            return refuse(.invalidRequest("the callback has no code"))
        }
        let signIn: OIDCClient.SignIn
        do throws(OIDCClient.Failure) {
            signIn = try await agent.oidc.redeem(code: code, pending: pending, redirectURI: agent.redirectURI)
        } catch {
            // The token endpoint gave no answer to use: 502 token_exchange_failed (README).
            var refusal = Self.failure(error)
            if case .unavailable = error { refusal.code = "token_exchange_failed" }
            agent.logger.notice("sign-in refused", metadata: ["reason": "\(refusal.code)"])
            return refuse(refusal)
        }
        // A new session id at every sign-in; the session this browser had, if any, ends.
        await agent.sessions.remove(Cookies.value(Cookies.session, in: request.headers[.cookie]))
        let user = SignedInUser(subject: signIn.claims.subject ?? "", name: signIn.name, email: signIn.email, idToken: signIn.idToken, expiresAt: signIn.claims.expiresAt)
        let session = await agent.sessions.create(user)
        agent.logger.info("signed in", metadata: ["sub": "\(user.subject)"])
        var headers: HTTPFields = [.location: "/", .cacheControl: "no-store"]
        headers.append(HTTPField(name: .setCookie, value: Cookies.set(Cookies.session, session.id, maxAge: Int(user.expiresAt.timeIntervalSinceNow), secure: agent.secureCookies)))
        headers.append(HTTPField(name: .setCookie, value: clearLogin))
        return Response(status: .found, headers: headers)
    }

    func logout(_ request: Request) async -> Response {
        var redirect = "/"
        if case .valid(let session) = await agent.sessions.lookup(Cookies.value(Cookies.session, in: request.headers[.cookie])) {
            if let problem = ChatRoutes.csrfProblem(request, session: session, agent: agent) { return problem.response() }
            await agent.sessions.remove(session.id)
            agent.logger.info("signed out", metadata: ["sub": "\(session.user.subject)"])
            // RP-initiated logout: the IdP ends its own session too, then sends the browser back.
            redirect = await agent.oidc.endSessionURL(idToken: session.user.idToken, postLogoutRedirect: agent.publicURL + "/") ?? "/"
        }
        var response = jsonResponse(["redirect": redirect])
        response.headers[.setCookie] = Cookies.clear(Cookies.session, secure: agent.secureCookies)
        return response
    }

    func status(_ request: Request) async -> Response {
        switch await agent.sessions.lookup(Cookies.value(Cookies.session, in: request.headers[.cookie])) {
        case .none:
            return jsonResponse(Status(authenticated: false))
        case .expired:
            return jsonResponse(Status(authenticated: false, reason: "session_expired"))
        case .valid(let s):
            return jsonResponse(Status(authenticated: true, name: s.user.name, email: s.user.email, subject: s.user.subject, expiresAt: s.user.expiresAt, csrfToken: s.csrfToken))
        }
    }

    struct Status: Encodable {
        var authenticated: Bool
        var reason: String?
        var name: String?
        var email: String?
        var subject: String?
        var expiresAt: Date?
        var csrfToken: String?

        enum CodingKeys: String, CodingKey {
            case authenticated, reason, name, email, subject
            case expiresAt = "expires_at"
            case csrfToken = "csrf_token"
        }
    }

    static func failure(_ f: OIDCClient.Failure) -> AgentError {
        switch f {
        case .unavailable(let why): return AgentError(code: "idp_unavailable", status: .badGateway, message: why)
        case .refused(let why): return AgentError(code: "sign_in_failed", status: .badRequest, message: "the identity provider refused the sign-in: \(why)")
        case .invalidIDToken(let why): return AgentError(code: "invalid_id_token", status: .badRequest, message: "the ID token was refused: \(why)")
        case .invalidNonce: return AgentError(code: "invalid_nonce", status: .badRequest, message: "the ID token's nonce does not match this browser's sign-in")
        }
    }
}
