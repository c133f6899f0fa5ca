public import Foundation
import JWTKit
import SwitchboardJSON

/// Verifies compact JWTs against one ``TokenPolicy`` and one issuer's keys (RFC 8725).
///
/// Order of checks: shape (canonical base64url segments; header and claims JSON objects that
/// name no member twice) → header (`alg` on the allow-list, `typ` accepted, `kid` present,
/// no `crit`) → key from the issuer's JWKS whose type and `alg` match → signature → `iss`,
/// `aud`, `exp`, `nbf`, `iat`, lifetime, `sub`.
public struct JWTVerifier: Sendable {
    public let policy: TokenPolicy
    private let keySet: any JWTKeyProvider
    private let now: @Sendable () -> Date

    public init(policy: TokenPolicy, keySet: any JWTKeyProvider, now: @escaping @Sendable () -> Date = { Date() }) {
        self.policy = policy
        self.keySet = keySet
        self.now = now
    }

    /// Verifies `token` and returns its claims, or throws ``TokenValidationError``.
    public func verify(_ token: String) async throws(TokenValidationError) -> JWTClaims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, token.utf8.count <= 16 * 1024 else {
            throw TokenValidationError(.malformed, "not a compact JWS")
        }
        let header = try JWTHeaderFields.parse(parts[0])
        guard let alg = header.alg, policy.algorithms.contains(alg) else {
            throw TokenValidationError(.unsupportedAlgorithm, "algorithm '\(header.alg ?? "none")' is not accepted")
        }
        guard !parts[2].isEmpty else { throw TokenValidationError(.malformed, "token has no signature") }
        // One spelling per token, one value per claim: a re-spelled signature or a claim named
        // twice (which JSON readers resolve differently) is refused before the key is looked up.
        guard let payload = Base64URL.decode(parts[1]), Base64URL.decode(parts[2]) != nil else {
            throw TokenValidationError(.malformed, "token is not canonical base64url")
        }
        guard case .object? = JSONValue.parseRefusingDuplicateNames(payload) else {
            throw TokenValidationError(.malformed, "token claims are not a JSON object with one value per name")
        }
        let typ = header.typ?.lowercased()
        guard policy.types.contains(where: { $0?.lowercased() == typ }) else {
            throw TokenValidationError(.wrongType, "token type '\(header.typ ?? "(none)")' is not accepted here")
        }
        guard header.crit == nil else { throw TokenValidationError(.malformed, "critical header extensions are not supported") }
        guard let kid = header.kid, !kid.isEmpty else { throw TokenValidationError(.malformed, "token header has no kid") }

        let material = try await keySet.key(for: kid)
        let jwk = material.jwk
        let collection = material.collection
        let expectedKeyType: JWK.KeyType = alg.hasPrefix("ES") ? .ecdsa : .rsa
        guard jwk.keyType == expectedKeyType, jwk.algorithm.map({ $0.rawValue == alg }) ?? true else {
            throw TokenValidationError(.unsupportedAlgorithm, "algorithm '\(alg)' does not match the key '\(kid)'")
        }
        let raw: RawClaims
        do {
            raw = try await collection.verify(token, as: RawClaims.self)
        } catch {
            throw TokenValidationError(.badSignature, "signature does not verify")
        }
        return try check(raw)
    }

    private func check(_ raw: RawClaims) throws(TokenValidationError) -> JWTClaims {
        let skew = Double(policy.clockSkew.components.seconds)
        let t = now().timeIntervalSince1970
        guard let iss = raw.iss else { throw TokenValidationError(.missingClaim, "token has no iss") }
        guard iss == policy.issuer else { throw TokenValidationError(.wrongIssuer, "token issuer is not trusted here") }
        let aud = raw.aud?.values ?? []
        guard aud.contains(where: policy.audiences.contains) else {
            throw TokenValidationError(.wrongAudience, "token was not issued for this audience")
        }
        if policy.idTokenAudienceRules {
            guard aud.allSatisfy(policy.audiences.contains) else {
                throw TokenValidationError(.wrongAudience, "token is also meant for an audience not trusted here")
            }
            if let azp = raw.azp {
                guard policy.audiences.contains(azp) else { throw TokenValidationError(.wrongAudience, "token was issued to another party (azp)") }
            } else if aud.count > 1 {
                throw TokenValidationError(.wrongAudience, "a token with several audiences must name its authorized party (azp)")
            }
        }
        guard let exp = raw.exp else { throw TokenValidationError(.missingClaim, "token has no exp") }
        guard exp + skew > t else { throw TokenValidationError(.expired, "token has expired") }
        if let nbf = raw.nbf, nbf - skew > t { throw TokenValidationError(.notYetValid, "token is not valid yet") }
        if let iat = raw.iat {
            guard iat - skew <= t else { throw TokenValidationError(.issuedInFuture, "token was issued in the future") }
            guard exp - iat <= Double(policy.maxLifetime.components.seconds) else {
                throw TokenValidationError(.lifetimeTooLong, "token lifetime exceeds the allowed maximum")
            }
        } else if exp - t > Double(policy.maxLifetime.components.seconds) {
            throw TokenValidationError(.lifetimeTooLong, "token lifetime exceeds the allowed maximum")
        }
        if policy.requireSubject, (raw.sub ?? "").isEmpty { throw TokenValidationError(.missingClaim, "token has no sub") }
        var scopes = raw.scp?.values ?? []
        if scopes.isEmpty, let scope = raw.scope { scopes = scope.split(separator: " ").map(String.init) }
        return JWTClaims(
            issuer: iss, subject: raw.sub, audience: aud, expiresAt: Date(timeIntervalSince1970: exp),
            issuedAt: raw.iat.map { Date(timeIntervalSince1970: $0) }, notBefore: raw.nbf.map { Date(timeIntervalSince1970: $0) },
            jwtID: raw.jti, uid: raw.uid, email: raw.email, name: raw.name, clientID: raw.client_id, scopes: scopes,
            actorSubject: raw.act?.sub, resource: raw.resource, nonce: raw.nonce
        )
    }
}
