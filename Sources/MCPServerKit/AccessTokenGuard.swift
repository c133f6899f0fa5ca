package import AsyncHTTPClient
package import Foundation
import OAuthCore
import Synchronization

/// The caller of a todo0 request, from a verified access token.
package struct Principal: Sendable {
    /// Owner key of the user's todos: `uid`, else `sub`.
    package var owner: String
    package var scopes: Set<String>
    package var expiresAt: Date
}

/// Why a request was refused (drives the `WWW-Authenticate` challenge).
package enum AuthFailure: Error, Sendable {
    case missing
    case invalid(String)
}

/// Validates access tokens issued by the configured authorization server for this
/// resource (RFC 9068 `at+jwt`, `aud` = this resource, issuer-pinned keys). Verified tokens
/// are remembered until `exp`, so the hot path is a look-up.
package final class AccessTokenGuard: Sendable {
    private let verifier: JWTVerifier
    private let verified = Mutex<[String: Principal]>([:])
    package let resourceMetadataURL: String

    package init(issuer: String, resource: String, resourceMetadataURL: String, httpClient: HTTPClient) {
        let keys = JWKSKeySet(issuer: issuer, httpClient: httpClient)
        verifier = JWTVerifier(policy: .accessToken(issuer: issuer, resource: resource), keySet: keys)
        self.resourceMetadataURL = resourceMetadataURL
    }

    package func authenticate(_ authorization: String?) async -> Result<Principal, AuthFailure> {
        guard let authorization, !authorization.isEmpty else { return .failure(.missing) }
        guard authorization.count > 7, authorization.prefix(7).lowercased() == "bearer " else {
            return .failure(.invalid("use the Bearer scheme"))
        }
        let token = String(authorization.dropFirst(7))
        let now = Date()
        if let hit = verified.withLock({ $0[token] }), hit.expiresAt > now { return .success(hit) }
        do {
            let claims = try await verifier.verify(token)
            let principal = Principal(owner: claims.uid ?? claims.subject ?? "", scopes: Set(claims.scopes), expiresAt: claims.expiresAt)
            guard !principal.owner.isEmpty else { return .failure(.invalid("the token names no user")) }
            verified.withLock { cache in
                if cache.count > 50_000 { cache = cache.filter { $0.value.expiresAt > now } }
                cache[token] = principal
            }
            return .success(principal)
        } catch {
            return .failure(.invalid(error.message))
        }
    }

    /// `WWW-Authenticate` for a 401.
    package func challenge(_ failure: AuthFailure) -> String {
        switch failure {
        case .missing: return "Bearer resource_metadata=\"\(resourceMetadataURL)\""
        case .invalid(let why):
            return "Bearer resource_metadata=\"\(resourceMetadataURL)\", error=\"invalid_token\", error_description=\"\(why.replacingOccurrences(of: "\"", with: "'"))\""
        }
    }

    /// `WWW-Authenticate` for a 403: every scope needed, including those already held.
    package func insufficientScope(needed: Set<String>, held: Set<String>) -> String {
        let all = needed.union(held).sorted().joined(separator: " ")
        let missing = needed.subtracting(held).sorted().joined(separator: " ")
        return "Bearer error=\"insufficient_scope\", scope=\"\(all)\", resource_metadata=\"\(resourceMetadataURL)\", error_description=\"this call needs \(missing)\""
    }
}
