public import Foundation

/// private_key_jwt client authentication (RFC 7523 §2.2).
public enum ClientAssertion {
    /// The `client_assertion_type` value.
    public static let type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

    /// A fresh assertion: `iss` = `sub` = `clientID`, `aud` = the exact token endpoint,
    /// `iat` now, `exp` now + `lifetime` (≤ 300 s), a random `jti`.
    public static func make(clientID: String, tokenEndpoint: String, key: SigningKey, lifetime: TimeInterval = 120, now: Date = Date()) throws -> String {
        let t = Int(now.timeIntervalSince1970)
        return try key.sign(claims: [
            "iss": clientID, "sub": clientID, "aud": tokenEndpoint, "iat": t, "exp": t + Int(min(lifetime, 300)),
            "jti": UUID().uuidString.lowercased(),
        ], type: "JWT")
    }

    /// The two form fields, ready to append to a token request.
    public static func formFields(clientID: String, tokenEndpoint: String, key: SigningKey, now: Date = Date()) throws -> [(String, String)] {
        [("client_assertion_type", type), ("client_assertion", try make(clientID: clientID, tokenEndpoint: tokenEndpoint, key: key, now: now))]
    }
}
