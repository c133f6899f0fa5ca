import Foundation
import JWTKit

/// Where a verifier gets the key for a `kid`: a remote JWKS (``JWKSKeySet``) or keys held
/// locally (``StaticKeySet``), e.g. an IdP checking its own tokens or a client's registered key.
public protocol JWTKeyProvider: Sendable {
    /// The collection holding the key and the JWK itself, or ``TokenValidationError`` `.unknownKey`.
    func key(for kid: String) async throws(TokenValidationError) -> JWTKeyMaterial
}

/// A verification key as jwt-kit holds it, with its JWK (for `kty`/`alg` checks).
public struct JWTKeyMaterial: Sendable {
    let collection: JWTKeyCollection
    let jwk: JWK
}

/// A fixed set of public keys given as JWK JSON objects.
public struct StaticKeySet: JWTKeyProvider {
    private let keys: [String: JWTKeyMaterial]

    /// `jwks` is a JWKS document (`{"keys": […]}`); keys jwt-kit cannot read are skipped.
    public init(jwksJSON: String) async throws {
        let set = try JSONDecoder().decode(JWKS.self, from: Data(jwksJSON.utf8))
        var out: [String: JWTKeyMaterial] = [:]
        for jwk in set.keys {
            guard let kid = jwk.keyIdentifier?.string, jwk.privateExponent == nil else { continue }
            let collection = JWTKeyCollection()
            guard (try? await collection.add(jwk: jwk)) != nil else { continue }
            out[kid] = JWTKeyMaterial(collection: collection, jwk: jwk)
        }
        keys = out
    }

    /// The kids held.
    public var keyIDs: [String] { keys.keys.sorted() }

    public func key(for kid: String) async throws(TokenValidationError) -> JWTKeyMaterial {
        guard let k = keys[kid] else { throw TokenValidationError(.unknownKey, "no key with this kid") }
        return k
    }
}
