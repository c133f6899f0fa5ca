/// Why a token was refused. `code` is stable (logs, metrics); `message` is safe to show and
/// never contains the token.
public struct TokenValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case malformed
        case unsupportedAlgorithm = "unsupported_algorithm"
        case wrongType = "wrong_type"
        case unknownKey = "unknown_key"
        case badSignature = "bad_signature"
        case wrongIssuer = "wrong_issuer"
        case wrongAudience = "wrong_audience"
        case expired
        case notYetValid = "not_yet_valid"
        case issuedInFuture = "issued_in_future"
        case lifetimeTooLong = "lifetime_too_long"
        case missingClaim = "missing_claim"
        case keysUnavailable = "keys_unavailable"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
