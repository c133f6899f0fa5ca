import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OAuthCore
import SwitchboardTesting
import SwitchboardJSON
import Synchronization

/// An OIDC provider that can be told to misbehave, for what the development IdP never does:
/// discovery, an authorization endpoint that signs the user in at once (or answers
/// `error=access_denied`), a token endpoint that checks the client, the redirect URI and the
/// PKCE verifier like a real one, and ID tokens signed with ``TestIssuer``'s RSA key (its JWKS
/// is this provider's `jwks_uri`), with a wrong nonce or a short life when told.
final class StandInOIDCProvider: Sendable {
    enum Behaviour: Sendable {
        /// A correct sign-in; the ID token lives `lifetime` seconds.
        case honest(lifetime: TimeInterval)
        /// The ID token carries a nonce other than the authorization request's.
        case wrongNonce
        /// The user declines: the authorization endpoint redirects with `error=access_denied`.
        case deny
        /// The token endpoint fails (500 with an HTML page).
        case brokenTokenEndpoint
    }

    /// The one user this provider signs in.
    static let subject = "00u-standin"
    static let userName = "Stand-in User"
    static let email = "standin@example.test"

    let behaviour: Behaviour
    let clientID: String
    let clientSecret: String
    let keys: TestIssuer
    private let server = Mutex<RunningServer?>(nil)
    private let pending = Mutex<[String: Authorization]>([:])
    private let issued = Mutex<[String]>([])

    struct Authorization: Sendable {
        var redirectURI: String
        var nonce: String?
        var challenge: String?
    }

    var issuer: String { server.withLock { $0!.baseURL } }
    /// The ID tokens the token endpoint issued.
    var idTokens: [String] { issued.withLock { $0 } }

    private init(behaviour: Behaviour, clientID: String, clientSecret: String, keys: TestIssuer) {
        self.behaviour = behaviour
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.keys = keys
    }

    static func start(_ behaviour: Behaviour, clientID: String = "agent0", clientSecret: String = "agent0-dev-secret") async throws -> StandInOIDCProvider {
        let keys = try await TestIssuer.start()
        let provider = StandInOIDCProvider(behaviour: behaviour, clientID: clientID, clientSecret: clientSecret, keys: keys)
        let router = Router(context: BasicRequestContext.self)
        router.get("/.well-known/openid-configuration") { _, _ in
            let i = provider.issuer
            return Self.json([
                "issuer": .string(i), "authorization_endpoint": .string(i + "/authorize"), "token_endpoint": .string(i + "/token"),
                "jwks_uri": .string(provider.keys.issuer + "/keys"), "end_session_endpoint": .string(i + "/logout"),
                "response_types_supported": ["code"], "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
            ])
        }
        router.get("/authorize") { request, _ in provider.authorize(request) }
        router.post("/token") { request, _ in try await provider.token(request) }
        do {
            let running = try await TestHTTPServer.start(router)
            provider.server.withLock { $0 = running }
        } catch {
            await keys.stop()
            throw error
        }
        return provider
    }

    func stop() async {
        let running = server.withLock { $0 }
        await running?.stop()
        await keys.stop()
    }

    private func authorize(_ request: Request) -> Response {
        let q = request.uri.queryParameters
        guard q["client_id"].map(String.init) == clientID, let redirect = q["redirect_uri"].map(String.init), q["response_type"] == "code" else {
            return Self.json(["error": "invalid_request"], status: .badRequest)
        }
        var items = [URLQueryItem]()
        if case .deny = behaviour {
            items.append(URLQueryItem(name: "error", value: "access_denied"))
            items.append(URLQueryItem(name: "error_description", value: "the user declined"))
        } else {
            let code = RandomToken.make()
            pending.withLock {
                $0[code] = Authorization(redirectURI: redirect, nonce: q["nonce"].map(String.init), challenge: q["code_challenge"].map(String.init))
            }
            items.append(URLQueryItem(name: "code", value: code))
        }
        if let state = q["state"] { items.append(URLQueryItem(name: "state", value: String(state))) }
        var components = URLComponents(string: redirect)!
        components.queryItems = (components.queryItems ?? []) + items
        return Response(status: .found, headers: [.location: components.string!, .cacheControl: "no-store"])
    }

    private func token(_ request: Request) async throws -> Response {
        if case .brokenTokenEndpoint = behaviour {
            return Response(status: .internalServerError, headers: [.contentType: "text/html"], body: .init(byteBuffer: ByteBuffer(string: "<h1>Internal Server Error</h1>")))
        }
        let body = try await request.body.collect(upTo: 64 * 1024)
        let form = TestHTTP.query("?" + String(buffer: body))
        let basic = "Basic " + Data("\(clientID):\(clientSecret)".utf8).base64EncodedString()
        guard request.headers[.authorization] == basic else { return Self.json(["error": "invalid_client"], status: .unauthorized) }
        guard form["grant_type"] == "authorization_code", let code = form["code"], let authorization = pending.withLock({ $0.removeValue(forKey: code) }),
              form["redirect_uri"] == authorization.redirectURI, let verifier = form["code_verifier"],
              Base64URL.encode(Data(SHA256.hash(data: Data(verifier.utf8)))) == authorization.challenge
        else { return Self.json(["error": "invalid_grant"], status: .badRequest) }
        var lifetime: TimeInterval = 600
        var nonce = authorization.nonce ?? ""
        switch behaviour {
        case .honest(let l): lifetime = l
        case .wrongNonce: nonce = "not-" + nonce
        case .deny, .brokenTokenEndpoint: return Self.json(["error": "invalid_grant"], status: .badRequest)
        }
        let idToken = keys.idToken(
            subject: Self.subject, audience: clientID, lifetime: lifetime,
            extra: ["iss": issuer, "nonce": nonce, "name": Self.userName, "email": Self.email])
        issued.withLock { $0.append(idToken) }
        return Self.json(["access_token": .string(RandomToken.make()), "token_type": "Bearer", "expires_in": .number(lifetime), "id_token": .string(idToken)])
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: value.encoded())))
    }
}
