import Crypto
import Foundation

/// Hex SHA-256 of a string (CSRF tokens, stored lookups); random ids come from OAuthCore's `RandomToken`.
enum SHA256Hex {
    static func of(_ s: String) -> String {
        SHA256.hash(data: Data(s.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
