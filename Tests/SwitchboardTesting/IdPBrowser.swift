import Crypto
import Foundation
public import NIOHTTP1
import OAuthCore

/// A user's browser at the development identity provider (`Sources/IdentityProvider`), over
/// real HTTP: signs in through the login page (authorization code + PKCE, the agent0 web
/// client by default) and opens and answers consent pages. For tests that need a real ID
/// token or a real consent. The steps are public one by one too (the login form, the code
/// before redemption, the redemption, the consent page and the decision) for the IdP's own
/// tests; ``Transport`` lets a suite send them its own way (through its cookie jar, or
/// recording every exchange).
public struct IdPBrowser: Sendable {
    /// Sends one request and reads the whole answer: method, URL, headers, body.
    public typealias Transport = @Sendable (HTTPMethod, String, [(String, String)], String?) async throws -> HTTPAnswer

    /// A signed-in user: the ID token the agent would hold, and the IdP session cookie.
    public struct SignedIn: Sendable {
        public var username: String
        public var idToken: String
        public var cookie: String
    }

    /// A PKCE verifier and its S256 challenge (RFC 7636 §4.2).
    public struct PKCE: Sendable {
        public var verifier: String
        public var challenge: String { Base64URL.encode(Array(SHA256.hash(data: Data(verifier.utf8)))) }

        public init(verifier: String) { self.verifier = verifier }
        /// 64 random base64url characters.
        public static func make() -> PKCE { PKCE(verifier: RandomToken.make(bytes: 48)) }
    }

    /// A sign-in up to the IdP's redirect, the code not redeemed.
    public struct Authorization: Sendable {
        public var code: String
        /// `state` as the redirect carries it.
        public var state: String?
        /// The IdP session cookie (`name=value`).
        public var cookie: String
        public var pkce: PKCE
        public var nonce: String
        /// Where the IdP sent the browser.
        public var location: String
        /// The IdP's answer to the login form (the 302).
        public var answer: HTTPAnswer
    }

    /// How the web client authenticates at the token endpoint.
    public enum ClientAuthentication: Sendable {
        case basic(String, String)
        case post(String, String)
        case none
    }

    public let issuer: String
    public let clientID: String
    public let clientSecret: String
    public let redirectURI: String
    private let transport: Transport

    /// Defaults: the agent0 web client of the IdP's development configuration, requests sent
    /// with ``TestHTTP`` (no redirect followed).
    public init(
        issuer: String, clientID: String = "agent0", clientSecret: String = "agent0-dev-secret",
        redirectURI: String = "http://127.0.0.1:3000/callback", transport: Transport? = nil
    ) {
        self.issuer = issuer
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.redirectURI = redirectURI
        self.transport = transport ?? { method, url, headers, body in
            try await TestHTTP.send(method, url, headers: headers, body: body, timeout: .seconds(20))
        }
    }

    public var authorizeEndpoint: String { issuer + "/oauth2/v1/authorize" }
    public var tokenEndpoint: String { issuer + "/oauth2/v1/token" }
    /// This client's own credentials, sent as HTTP Basic.
    public var ownCredentials: ClientAuthentication { .basic(clientID, clientSecret) }

    // MARK: requests

    public func get(_ url: String, headers: [(String, String)] = []) async throws -> HTTPAnswer {
        try await transport(.GET, url, headers, nil)
    }

    /// A form POST.
    public func post(_ url: String, form: [(String, String)], headers: [(String, String)] = []) async throws -> HTTPAnswer {
        try await transport(.POST, url, [("Content-Type", "application/x-www-form-urlencoded")] + headers, TestHTTP.form(form))
    }

    // MARK: sign-in

    /// The authorization request of this client (`redirectURI` nil: the client's own).
    public func authorizeParameters(
        pkce: PKCE, state: String = IdPBrowser.newState(), nonce: String = IdPBrowser.newNonce(),
        redirectURI: String? = nil, scope: String = "openid profile email"
    ) -> [(String, String)] {
        [("client_id", clientID), ("redirect_uri", redirectURI ?? self.redirectURI), ("response_type", "code"), ("scope", scope),
         ("state", state), ("nonce", nonce), ("code_challenge", pkce.challenge), ("code_challenge_method", "S256")]
    }

    public func authorizeURL(_ parameters: [(String, String)]) -> String { authorizeEndpoint + "?" + TestHTTP.form(parameters) }

    /// Opens the login page at `url` (it must answer 200) and submits it with the credentials.
    /// `headers` go with the submission only.
    public func submitLogin(at url: String, username: String, password: String, headers: [(String, String)] = []) async throws -> HTTPAnswer {
        let page = try await get(url)
        guard page.status == 200 else { throw IdPBrowserError("login page", page) }
        return try await fillInLogin(page, at: url, username: username, password: password, headers: headers)
    }

    /// Submits the login page `page` (the answer to `url`): its hidden fields and the
    /// credentials, to the form's action.
    public func fillInLogin(_ page: HTTPAnswer, at url: String, username: String, password: String, headers: [(String, String)] = []) async throws -> HTTPAnswer {
        let action = TestHTTP.formAction(page.body).map { $0.hasPrefix("/") ? TestHTTP.origin(url) + $0 : $0 }
            ?? TestHTTP.withoutQuery(url)
        return try await post(action, form: TestHTTP.hiddenFields(page.body) + [("username", username), ("password", password)], headers: headers)
    }

    /// Signs `username` in through the login page and returns the code, not redeemed, and the
    /// session cookie. Checks neither `state` nor where the redirect goes.
    public func authorize(
        _ username: String, password: String, pkce: PKCE = .make(), state: String = IdPBrowser.newState()
    ) async throws -> Authorization {
        let nonce = Self.newNonce()
        let answer = try await submitLogin(
            at: authorizeURL(authorizeParameters(pkce: pkce, state: state, nonce: nonce)), username: username, password: password)
        guard answer.status == 302, let location = answer.header("Location"), let code = TestHTTP.query(location)["code"],
              let cookie = Self.sessionCookie(answer)
        else { throw IdPBrowserError("sign-in", answer) }
        return Authorization(code: code, state: TestHTTP.query(location)["state"], cookie: cookie, pkce: pkce, nonce: nonce, location: location, answer: answer)
    }

    /// `grant_type=authorization_code` at the org token endpoint (`auth` nil: ``ownCredentials``;
    /// `redirectURI` nil: the client's own).
    public func redeem(
        code: String, verifier: String, redirectURI: String? = nil, auth: ClientAuthentication? = nil, extra: [(String, String)] = []
    ) async throws -> HTTPAnswer {
        var form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI ?? self.redirectURI), ("code_verifier", verifier)]
        var headers: [(String, String)] = []
        switch auth ?? ownCredentials {
        case .basic(let id, let secret): headers.append(("Authorization", "Basic " + Data("\(id):\(secret)".utf8).base64EncodedString()))
        case .post(let id, let secret): form += [("client_id", id), ("client_secret", secret)]
        case .none: break
        }
        return try await post(tokenEndpoint, form: form + extra, headers: headers)
    }

    /// Signs `username` in through the login page and redeems the code (the redirect must go
    /// to ``redirectURI`` and carry the `state` sent).
    public func signIn(_ username: String, password: String) async throws -> SignedIn {
        let state = Self.newState()
        let authorization = try await authorize(username, password: password, state: state)
        guard authorization.location.hasPrefix(redirectURI), authorization.state == state else { throw IdPBrowserError("sign-in", authorization.answer) }
        let tokens = try await redeem(code: authorization.code, verifier: authorization.pkce.verifier)
        guard tokens.status == 200, let idToken = tokens.json["id_token"] as? String else { throw IdPBrowserError("code redemption", tokens) }
        return SignedIn(username: username, idToken: idToken, cookie: authorization.cookie)
    }

    // MARK: consent

    /// Opens the consent page as the holder of `cookie`.
    public func consentPage(_ interactionURI: String, cookie: String?) async throws -> HTTPAnswer {
        try await get(interactionURI, headers: cookie.map { [("Cookie", $0)] } ?? [])
    }

    /// Posts the consent decision.
    public func decide(_ interactionURI: String, cookie: String?, csrf: String, decision: String) async throws -> HTTPAnswer {
        try await post(interactionURI, form: [("csrf", csrf), ("decision", decision)], headers: cookie.map { [("Cookie", $0)] } ?? [])
    }

    /// The holder of `cookie` opens `interactionURI` (from an `interaction_required` answer) and approves.
    public func approve(_ interactionURI: String, cookie: String) async throws {
        let page = try await consentPage(interactionURI, cookie: cookie)
        guard page.status == 200, let csrf = Self.csrf(in: page.body) else { throw IdPBrowserError("consent page", page) }
        let done = try await decide(interactionURI, cookie: cookie, csrf: csrf, decision: "approve")
        guard done.status == 200 else { throw IdPBrowserError("consent approval", done) }
    }

    /// `user` opens `interactionURI` (from an `interaction_required` answer) and approves.
    public func approve(_ interactionURI: String, as user: SignedIn) async throws {
        try await approve(interactionURI, cookie: user.cookie)
    }

    // MARK: parsing

    /// A fresh `state` (`st-…`).
    public static func newState() -> String { "st-" + RandomToken.make(bytes: 8) }
    /// A fresh `nonce` (`n-…`).
    public static func newNonce() -> String { "n-" + RandomToken.make(bytes: 8) }

    /// The `csrf` hidden field of a page.
    public static func csrf(in html: String) -> String? { TestHTTP.hiddenFields(html).first { $0.0 == "csrf" }?.1 }

    /// `name=value` of the IdP session cookie an answer sets.
    public static func sessionCookie(_ answer: HTTPAnswer) -> String? {
        answer.headers["Set-Cookie"].first { $0.hasPrefix("sb_idp_session=") }.flatMap { $0.split(separator: ";").first.map(String.init) }
    }
}

/// A step of a browser flow that did not get the answer it needs.
public struct IdPBrowserError: Error, CustomStringConvertible {
    public var description: String
    public init(_ step: String, _ answer: HTTPAnswer) { description = "\(step): HTTP \(answer.status) \(answer.body.prefix(500))" }
}
