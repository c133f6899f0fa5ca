import Foundation

/// Unguessable identifiers (session ids, state, nonce, PKCE verifiers, codes), shared by the
/// identity provider and agent0.
public enum RandomToken {
    /// `bytes` random bytes from the system's CSPRNG as base64url (default 32 bytes = 256 bits).
    public static func make(bytes: Int = 32) -> String {
        var g = SystemRandomNumberGenerator()
        return Base64URL.encode((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &g) })
    }
}

/// Compares two secrets in time independent of where they differ.
public func constantTimeEquals(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    var diff = UInt8(x.count == y.count ? 0 : 1)
    for i in 0..<max(x.count, y.count) { diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
    return diff == 0
}
