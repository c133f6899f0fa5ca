public import Foundation

/// The JOSE header fields the verifier looks at before touching the signature.
struct JWTHeaderFields: Decodable {
    var alg: String?
    var typ: String?
    var kid: String?
    var crit: [String]?

    /// Parses the first segment of a compact JWT.
    static func parse(_ token: Substring) throws(TokenValidationError) -> JWTHeaderFields {
        guard let data = Base64URL.decode(token) else {
            throw TokenValidationError(.malformed, "token header is not base64url")
        }
        do {
            return try JSONDecoder().decode(JWTHeaderFields.self, from: data)
        } catch {
            throw TokenValidationError(.malformed, "token header is not a JSON object")
        }
    }
}

/// base64url without padding (RFC 7515 §2).
public enum Base64URL {
    public static func decode(_ text: some StringProtocol) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        if s.contains("=") { return nil }
        let rem = s.count % 4
        if rem == 1 { return nil }
        if rem > 0 { s += String(repeating: "=", count: 4 - rem) }
        return Data(base64Encoded: s)
    }

    public static func encode(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
