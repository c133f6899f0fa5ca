public import Foundation

/// The user a request acts for, after the gateway verified their ID token.
///
/// A plugin receives this only once signature, issuer, audience and lifetime checked out; it
/// never sees an unverified caller.
public struct CallerIdentity: Sendable, Hashable {
    /// `sub` of the ID token.
    public var subject: String { didSet { userKey = Self.userKey(issuer: issuer, subject: subject) } }
    /// `iss` of the ID token.
    public var issuer: String { didSet { userKey = Self.userKey(issuer: issuer, subject: subject) } }
    /// The audience the gateway accepted (`users.audience`).
    public var audience: String
    /// Okta's `uid` claim when present (stable user id across apps).
    public var userID: String?
    /// `email`, when the token carries it.
    public var email: String?
    /// `name`, when the token carries it.
    public var name: String?
    /// Every claim of the ID token, each as its values in text (a scalar has one, an array such
    /// as `groups` one per element): what authorization policies match on.
    public var claims: [String: [String]]
    /// When the ID token expires.
    public var expiresAt: Date
    /// The raw ID token, for token exchange. Redacted in every description.
    public var subjectToken: SubjectToken

    public init(
        subject: String, issuer: String, audience: String, userID: String? = nil, email: String? = nil,
        name: String? = nil, claims: [String: [String]] = [:], expiresAt: Date, subjectToken: SubjectToken
    ) {
        self.claims = claims
        self.subject = subject
        self.issuer = issuer
        self.userKey = Self.userKey(issuer: issuer, subject: subject)
        self.audience = audience
        self.userID = userID
        self.email = email
        self.name = name
        self.expiresAt = expiresAt
        self.subjectToken = subjectToken
    }

    /// The key under which per-user state is kept: issuer + subject. Stored, not computed:
    /// the proxy reads it several times per request (credential and status look-ups).
    public private(set) var userKey: String

    private static func userKey(issuer: String, subject: String) -> String { issuer + "#" + subject }
}

/// A token that must never be logged or forwarded upstream as is.
///
/// `description` prints `<redacted>`; ``reveal()`` is the one way to read it.
public struct SubjectToken: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    private let raw: String

    public init(_ raw: String) { self.raw = raw }

    /// The token text. Use it only as a `subject_token` in a token exchange.
    public func reveal() -> String { raw }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}
