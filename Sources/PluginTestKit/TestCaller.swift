public import Foundation
public import PluginAPI

/// Builds the ``CallerIdentity`` the gateway hands a plugin once it verified the user's ID token.
public enum TestCaller {
    /// The caller behind `idToken` (e.g. one a real IdP just issued to a test user): `sub`, `iss`,
    /// `aud`, `uid`, `email`, `name` and `exp` are read from its payload and the token itself
    /// becomes the subject token.
    ///
    /// The token is NOT verified — that is the gateway's job, done before a plugin runs; a test
    /// passes a token it obtained itself. `audience` overrides `aud` (the gateway's
    /// `users.audience`); by default it is `aud` (its first entry when it is a list).
    public static func fromIDToken(_ idToken: String, audience: String? = nil) throws(TestKitError) -> CallerIdentity {
        let parts = idToken.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let payload = base64URLDecode(parts[1]),
              let claims = (try? JSONSerialization.jsonObject(with: payload)) as? [String: Any]
        else { throw TestKitError("not a compact JWT") }
        guard let subject = claims["sub"] as? String, let issuer = claims["iss"] as? String else {
            throw TestKitError("the ID token has no 'sub' or 'iss'")
        }
        let aud = audience ?? (claims["aud"] as? String) ?? (claims["aud"] as? [String])?.first
        guard let aud else { throw TestKitError("the ID token has no 'aud'; pass audience:") }
        guard let exp = (claims["exp"] as? NSNumber)?.doubleValue else { throw TestKitError("the ID token has no 'exp'") }
        return CallerIdentity(
            subject: subject, issuer: issuer, audience: aud, userID: claims["uid"] as? String, email: claims["email"] as? String,
            name: claims["name"] as? String, expiresAt: Date(timeIntervalSince1970: exp), subjectToken: SubjectToken(idToken))
    }

    /// A caller made of claims alone, for plugins that do not exchange the ID token (a real IdP
    /// refuses `subjectToken`, which is no token).
    public static func withClaims(
        subject: String = "00u-test", issuer: String = "https://idp.example.test", audience: String = "agent0", userID: String? = nil,
        email: String? = nil, name: String? = nil, expiresAt: Date = Date().addingTimeInterval(3600),
        subjectToken: String = "not-a-real-id-token"
    ) -> CallerIdentity {
        CallerIdentity(
            subject: subject, issuer: issuer, audience: audience, userID: userID, email: email, name: name, expiresAt: expiresAt,
            subjectToken: SubjectToken(subjectToken))
    }

    private static func base64URLDecode(_ text: Substring) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        if s.count % 4 == 1 { return nil }
        if s.count % 4 > 0 { s += String(repeating: "=", count: 4 - s.count % 4) }
        return Data(base64Encoded: s)
    }
}

/// A test-kit step that could not be done (a fixture that does not describe what the test asked for).
public struct TestKitError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
