import Crypto
import _CryptoExtras
public import Foundation
import Hummingbird
import NIOCore
import OAuthCore
import Synchronization

/// A real OIDC issuer for tests: RSA-2048 and P-256 keys generated at start, a discovery
/// document and a JWKS served over HTTP on a free loopback port, and a signer for tokens
/// of any shape (including malformed ones, for the negative tests).
public final class TestIssuer: Sendable {
    public enum Key: Sendable {
        case rsa
        case ec
        /// Signs with an RSA key the JWKS does not publish (but under a published kid).
        case foreignRSA
        /// HMAC with the given secret (must be refused).
        case hs256(String)
        /// `alg: none`, empty signature (must be refused).
        case none
    }

    public let rsaKid = "test-rsa-1"
    public let ecKid = "test-ec-1"
    let rsaKey: _RSA.Signing.PrivateKey
    let foreignRSAKey: _RSA.Signing.PrivateKey
    let ecKey = P256.Signing.PrivateKey()
    let server: Mutex<RunningServer?> = Mutex(nil)
    let fetches = Mutex(0)
    /// kids published in the JWKS; tests may add more to simulate rotation.
    let published: Mutex<Set<String>>

    /// The issuer URL (`http://127.0.0.1:<port>`).
    public var issuer: String { server.withLock { $0!.baseURL } }
    /// How many times the JWKS was fetched.
    public var jwksFetches: Int { fetches.withLock { $0 } }

    static let sharedKeys: (_RSA.Signing.PrivateKey, _RSA.Signing.PrivateKey) = (
        try! _RSA.Signing.PrivateKey(keySize: .bits2048), try! _RSA.Signing.PrivateKey(keySize: .bits2048)
    )

    private init() throws {
        // RSA-2048 generation costs tens of milliseconds of CPU: every issuer of a test run
        // shares one pair (each still serves its own JWKS on its own port).
        rsaKey = Self.sharedKeys.0
        foreignRSAKey = Self.sharedKeys.1
        published = Mutex(["test-rsa-1", "test-ec-1"])
    }

    /// Starts the issuer's HTTP endpoints.
    public static func start() async throws -> TestIssuer {
        let issuer = try TestIssuer()
        let router = Router()
        router.get("/.well-known/openid-configuration") { _, _ in
            let base = issuer.issuer
            return Self.jsonResponse(["issuer": base, "jwks_uri": base + "/keys", "id_token_signing_alg_values_supported": ["RS256", "ES256"]])
        }
        router.get("/keys") { _, _ in
            issuer.fetches.withLock { $0 += 1 }
            return Self.jsonResponse(["keys": issuer.jwks()])
        }
        let running = try await TestHTTPServer.start(router)
        issuer.server.withLock { $0 = running }
        return issuer
    }

    public func stop() async {
        let s = server.withLock { $0 }
        await s?.stop()
    }

    /// Publishes the RSA key under an additional kid (key rotation).
    public func publish(kid: String) { _ = published.withLock { $0.insert(kid) } }

    func jwks() -> [[String: String]] {
        let kids = published.withLock { $0 }
        var out: [[String: String]] = []
        let prims = try! rsaKey.publicKey.getKeyPrimitives()
        for kid in kids.sorted() where kid != ecKid {
            out.append(["kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": Base64URL.encode(prims.modulus), "e": Base64URL.encode(prims.publicExponent)])
        }
        if kids.contains(ecKid) {
            let raw = ecKey.publicKey.rawRepresentation
            out.append(["kty": "EC", "kid": ecKid, "use": "sig", "alg": "ES256", "crv": "P-256",
                        "x": Base64URL.encode(raw.prefix(32)), "y": Base64URL.encode(raw.suffix(32))])
        }
        return out
    }

    /// An ID token for `audience` with sensible claims; override any claim or header field.
    public func idToken(
        subject: String = "user-1", audience: String = "agent0", lifetime: TimeInterval = 600, issuedAt: Date = Date(),
        extra: [String: any Sendable] = [:], header: [String: any Sendable] = [:], key: Key = .rsa
    ) -> String {
        var claims: [String: any Sendable] = [
            "iss": issuer, "sub": subject, "aud": audience, "iat": Int(issuedAt.timeIntervalSince1970),
            "exp": Int(issuedAt.timeIntervalSince1970 + lifetime), "email": "\(subject)@example.test", "uid": "uid-\(subject)",
        ]
        for (k, v) in extra { claims[k] = v }
        return sign(claims: claims, header: header, key: key)
    }

    /// Signs arbitrary claims. `header` fields override the defaults (`alg`, `kid`, `typ: JWT`);
    /// set a field to `NSNull()` to remove it.
    public func sign(claims: [String: any Sendable], header: [String: any Sendable] = [:], key: Key = .rsa) -> String {
        var h: [String: any Sendable] = ["typ": "JWT"]
        switch key {
        case .rsa, .foreignRSA: h["alg"] = "RS256"; h["kid"] = rsaKid
        case .ec: h["alg"] = "ES256"; h["kid"] = ecKid
        case .hs256: h["alg"] = "HS256"; h["kid"] = rsaKid
        case .none: h["alg"] = "none"; h["kid"] = rsaKid
        }
        for (k, v) in header {
            if v is NSNull { h[k] = nil } else { h[k] = v }
        }
        let headerPart = Base64URL.encode(try! JSONSerialization.data(withJSONObject: h, options: [.sortedKeys]))
        let payloadPart = Base64URL.encode(try! JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys]))
        let input = Data((headerPart + "." + payloadPart).utf8)
        let signature: Data
        switch key {
        case .rsa: signature = try! rsaKey.signature(for: input, padding: .insecurePKCS1v1_5).rawRepresentation
        case .foreignRSA: signature = try! foreignRSAKey.signature(for: input, padding: .insecurePKCS1v1_5).rawRepresentation
        case .ec: signature = try! ecKey.signature(for: input).rawRepresentation
        case .hs256(let secret):
            signature = Data(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: Data(secret.utf8))))
        case .none: signature = Data()
        }
        return headerPart + "." + payloadPart + "." + Base64URL.encode(signature)
    }

    static func jsonResponse(_ object: [String: any Sendable]) -> Response {
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
