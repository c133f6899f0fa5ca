import Foundation

/// Reads a JWT's payload WITHOUT verifying it — only to decide which key or policy applies
/// (e.g. the `iss` of a client assertion). Never trust what it returns.
public enum JWTPeek {
    public static func unverifiedClaims(_ token: String) -> [String: Any]? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let data = Base64URL.decode(parts[1]) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }
}
