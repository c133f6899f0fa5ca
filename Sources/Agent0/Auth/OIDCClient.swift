import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import OAuthCore

/// agent0 as an OIDC relying party: discovery, the authorization request (code + PKCE S256 +
/// state + nonce), the code exchange (client_secret_basic) and the ID token's full check.
/// Works against the development IdP and an Okta org alike: everything comes from discovery.
actor OIDCClient {
    struct Metadata: Sendable {
        var authorizationEndpoint: String
        var tokenEndpoint: String
        var jwksURI: String
        var endSessionEndpoint: String?
    }

    /// What the code exchange yields once the ID token checked out.
    struct SignIn: Sendable {
        var idToken: String
        var claims: JWTClaims
        var name: String
        var email: String?
    }

    enum Failure: Error, Sendable {
        /// The IdP could not be reached or answered nonsense (discovery, JWKS, token endpoint).
        case unavailable(String)
        /// The IdP refused the code (`invalid_grant`, …).
        case refused(String)
        /// The ID token failed a check (signature, iss, aud, exp, nonce…).
        case invalidIDToken(String)
        case invalidNonce
    }

    let issuer: String
    let clientID: String
    private let clientSecret: String
    private let httpClient: HTTPClient
    private let logger: Logger
    private var metadata: Metadata?
    private var keySet: JWKSKeySet?

    init(issuer: String, clientID: String, clientSecret: String, httpClient: HTTPClient, logger: Logger) {
        self.issuer = issuer
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.httpClient = httpClient
        self.logger = logger
    }

    /// The discovery document, fetched once (and again after a failure).
    func discover() async throws(Failure) -> Metadata {
        if let metadata { return metadata }
        let base = issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer
        let object: [String: Any]
        do {
            let response = try await httpClient.execute(HTTPClientRequest(url: base + "/.well-known/openid-configuration"), timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 256 * 1024)
            guard response.status == .ok, let o = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] else {
                throw Failure.unavailable("the identity provider's discovery document could not be read (status \(response.status.code))")
            }
            object = o
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .unavailable("the identity provider at \(issuer) could not be reached")
        }
        guard object["issuer"] as? String == issuer, let authorize = object["authorization_endpoint"] as? String,
              let token = object["token_endpoint"] as? String, let jwks = object["jwks_uri"] as? String
        else { throw .unavailable("the identity provider's discovery document does not describe issuer \(issuer)") }
        let m = Metadata(authorizationEndpoint: authorize, tokenEndpoint: token, jwksURI: jwks, endSessionEndpoint: object["end_session_endpoint"] as? String)
        metadata = m
        keySet = JWKSKeySet(issuer: issuer, jwksURI: jwks, httpClient: httpClient, logger: logger)
        return m
    }

    /// The URL the browser is sent to; the caller keeps `pending` for the callback.
    func authorizationURL(for pending: PendingSignIn, redirectURI: String, scopes: String) async throws(Failure) -> String {
        let m = try await discover()
        let query = TokenEndpointClient.encode([
            ("client_id", clientID), ("response_type", "code"), ("scope", scopes), ("redirect_uri", redirectURI),
            ("state", pending.state), ("nonce", pending.nonce), ("code_challenge", PKCE.challenge(for: pending.verifier)),
            ("code_challenge_method", "S256"),
        ])
        return m.authorizationEndpoint + (m.authorizationEndpoint.contains("?") ? "&" : "?") + query
    }

    /// Exchanges the code and checks the ID token, the nonce included.
    func redeem(code: String, pending: PendingSignIn, redirectURI: String) async throws(Failure) -> SignIn {
        let m = try await discover()
        let credentials = Data("\(Self.formEscape(clientID)):\(Self.formEscape(clientSecret))".utf8).base64EncodedString()
        let answer: TokenResponse
        do {
            answer = try await TokenEndpointClient(httpClient: httpClient).request(m.tokenEndpoint, form: [
                ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI), ("code_verifier", pending.verifier),
            ], headers: [("Authorization", "Basic " + credentials)])
        } catch {
            switch error {
            case .oauth(_, let code, let description, _): throw .refused(code + (description.map { ": " + $0 } ?? ""))
            case .unreachable, .malformed: throw .unavailable("the identity provider's token endpoint failed (\(error.description))")
            }
        }
        guard let idToken = answer.idToken else { throw .refused("the token answer has no id_token") }
        guard let keySet else { throw .unavailable("no keys") }
        let claims: JWTClaims
        do {
            claims = try await JWTVerifier(policy: .idToken(issuer: issuer, clientID: clientID), keySet: keySet).verify(idToken)
        } catch {
            throw .invalidIDToken(error.message)
        }
        // OIDC Core §3.1.3.7: the nonce must be the one this browser's request carried.
        guard let nonce = claims.nonce, constantTimeEquals(nonce, pending.nonce) else { throw .invalidNonce }
        let name = claims.name ?? claims.email ?? claims.subject ?? "user"
        return SignIn(idToken: idToken, claims: claims, name: name, email: claims.email)
    }

    /// RP-initiated logout at the IdP, when it has an end-session endpoint.
    func endSessionURL(idToken: String, postLogoutRedirect: String) async -> String? {
        guard let m = try? await discover(), let end = m.endSessionEndpoint else { return nil }
        let query = TokenEndpointClient.encode([("id_token_hint", idToken), ("post_logout_redirect_uri", postLogoutRedirect)])
        return end + (end.contains("?") ? "&" : "?") + query
    }

    /// RFC 6749 §2.3.1: client id and secret are form-encoded before Basic.
    static func formEscape(_ s: String) -> String {
        String(TokenEndpointClient.encode([(s, "")]).dropLast())  // "name=" without its "="
    }
}

/// One sign-in in progress: what `/callback` must find again (kept server-side).
struct PendingSignIn: Sendable {
    var state: String
    var nonce: String
    var verifier: String
    var createdAt: ContinuousClock.Instant

    static func make() -> PendingSignIn {
        PendingSignIn(state: RandomToken.make(), nonce: RandomToken.make(), verifier: RandomToken.make(bytes: 48), createdAt: .now)
    }
}

/// RFC 7636 S256.
enum PKCE {
    static func challenge(for verifier: String) -> String {
        Base64URL.encode(Data(SHA256.hash(data: Data(verifier.utf8))))
    }
}
