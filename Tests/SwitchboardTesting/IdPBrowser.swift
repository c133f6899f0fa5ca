import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import OAuthCore

/// A user's browser at the development identity provider (`Sources/IdentityProvider`), over
/// real HTTP: signs in through the login page (authorization code + PKCE, the agent0 web
/// client) and approves consent pages. For tests that need a real ID token or a real consent.
public struct IdPBrowser: Sendable {
    /// A signed-in user: the ID token the agent would hold, and the IdP session cookie.
    public struct SignedIn: Sendable {
        public var username: String
        public var idToken: String
        public var cookie: String
    }

    public let issuer: String
    public let clientID: String
    public let clientSecret: String
    public let redirectURI: String

    /// Follows no redirect: sign-in reads the 302 itself.
    private static let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: .init(redirectConfiguration: .disallow))

    /// Defaults: the agent0 web client of the IdP's development configuration.
    public init(
        issuer: String, clientID: String = "agent0", clientSecret: String = "agent0-dev-secret",
        redirectURI: String = "http://127.0.0.1:3000/callback"
    ) {
        self.issuer = issuer
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.redirectURI = redirectURI
    }

    /// Signs `username` in through the login page and redeems the code.
    public func signIn(_ username: String, password: String) async throws -> SignedIn {
        let verifier = RandomToken.make(bytes: 48)
        let challenge = Base64URL.encode(Array(SHA256.hash(data: Data(verifier.utf8))))
        let state = "st-" + RandomToken.make(bytes: 8)
        let parameters = [
            ("client_id", clientID), ("redirect_uri", redirectURI), ("response_type", "code"), ("scope", "openid profile email"),
            ("state", state), ("nonce", "n-" + RandomToken.make(bytes: 8)), ("code_challenge", challenge), ("code_challenge_method", "S256"),
        ]
        let authorize = issuer + "/oauth2/v1/authorize"
        let page = try await send(authorize + "?" + TokenEndpointClient.encode(parameters))
        guard page.status == 200 else { throw IdPBrowserError("login page", page) }
        let login = try await send(authorize, form: Self.hiddenFields(page.body) + [("username", username), ("password", password)])
        guard login.status == 302, let location = login.location, location.hasPrefix(redirectURI),
              let items = URLComponents(string: location)?.queryItems, let code = items.first(where: { $0.name == "code" })?.value,
              items.first(where: { $0.name == "state" })?.value == state,
              let cookie = login.setCookies.first(where: { $0.hasPrefix("sb_idp_session=") })?.split(separator: ";").first.map(String.init)
        else { throw IdPBrowserError("sign-in", login) }
        let basic = "Basic " + Data("\(clientID):\(clientSecret)".utf8).base64EncodedString()
        let tokens = try await send(
            issuer + "/oauth2/v1/token",
            form: [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI), ("code_verifier", verifier)],
            headers: [("Authorization", basic)])
        guard tokens.status == 200, let idToken = tokens.json["id_token"] as? String else { throw IdPBrowserError("code redemption", tokens) }
        return SignedIn(username: username, idToken: idToken, cookie: cookie)
    }

    /// `user` opens `interactionURI` (from an `interaction_required` answer) and approves.
    public func approve(_ interactionURI: String, as user: SignedIn) async throws {
        let page = try await send(interactionURI, headers: [("Cookie", user.cookie)])
        guard page.status == 200, let csrf = Self.hiddenFields(page.body).first(where: { $0.0 == "csrf" })?.1 else {
            throw IdPBrowserError("consent page", page)
        }
        let done = try await send(interactionURI, form: [("csrf", csrf), ("decision", "approve")], headers: [("Cookie", user.cookie)])
        guard done.status == 200 else { throw IdPBrowserError("consent approval", done) }
    }

    struct Answer {
        var status: Int
        var location: String?
        var setCookies: [String]
        var body: String
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
    }

    /// GET, or POST of `form`.
    private func send(_ url: String, form: [(String, String)]? = nil, headers: [(String, String)] = []) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let form {
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: TokenEndpointClient.encode(form)))
        }
        let response = try await Self.client.execute(request, timeout: .seconds(20))
        let body = try await response.body.collect(upTo: 4 << 20)
        return Answer(
            status: Int(response.status.code), location: response.headers.first(name: "Location"), setCookies: response.headers["Set-Cookie"],
            body: String(buffer: body))
    }

    /// The hidden inputs of an IdP page, in order.
    static func hiddenFields(_ html: String) -> [(String, String)] {
        html.matches(of: /<input type="hidden" name="([^"]*)" value="([^"]*)">/).map { (unescape(String($0.1)), unescape(String($0.2))) }
    }

    static func unescape(_ s: String) -> String {
        s.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
    }
}

/// A step of a browser flow that did not get the answer it needs.
public struct IdPBrowserError: Error, CustomStringConvertible {
    public var description: String
    init(_ step: String, _ answer: IdPBrowser.Answer) { description = "\(step): HTTP \(answer.status) \(answer.body.prefix(500))" }
}
