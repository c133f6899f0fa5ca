import Crypto
import Foundation

/// Random identifiers and hashes used across the IdP.
enum RandomToken {
    /// `bytes` random bytes as base64url (default 32 bytes = 256 bits).
    static func make(bytes: Int = 32) -> String {
        var g = SystemRandomNumberGenerator()
        let data = Data((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &g) })
        return data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}

enum SHA256Hex {
    static func of(_ s: String) -> String {
        SHA256.hash(data: Data(s.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
