/// What makes a JWT acceptable to one verifier: the RFC 8725 checks, pinned per issuer.
public struct TokenPolicy: Sendable, Hashable {
    /// The only accepted `iss`.
    public var issuer: String
    /// Accepted audiences: the token's `aud` must contain one of them.
    public var audiences: Set<String>
    /// OpenID Connect's rules for an ID token (Core §3.1.3.7): every value of `aud` must be one
    /// of `audiences` (a token also meant for a party not trusted here is refused); `azp`, when
    /// present, must be one of them too (this client), and a token with several audiences must
    /// carry it.
    public var idTokenAudienceRules = false
    /// Signature algorithms accepted (never `none`, never HS* with public keys).
    public var algorithms: Set<String>
    /// Accepted `typ` header values, compared case-insensitively; `nil` in the set accepts
    /// a token without `typ`.
    public var types: Set<String?>
    /// Allowed clock difference for `exp`, `nbf`, `iat`.
    public var clockSkew: Duration
    /// Longest accepted `exp - iat`.
    public var maxLifetime: Duration
    /// Whether `sub` must be present.
    public var requireSubject: Bool

    public init(
        issuer: String, audiences: Set<String>, algorithms: Set<String> = ["RS256", "ES256"],
        types: Set<String?>, clockSkew: Duration = .seconds(60), maxLifetime: Duration = .seconds(86_400),
        requireSubject: Bool = true
    ) {
        self.issuer = issuer
        self.audiences = audiences
        self.algorithms = algorithms
        self.types = types
        self.clockSkew = clockSkew
        self.maxLifetime = maxLifetime
        self.requireSubject = requireSubject
    }

    /// An OIDC ID token for `clientID`: `typ` absent or `JWT` (so an `at+jwt` access token or
    /// an `oauth-id-jag+jwt` can never pass as an ID token).
    public static func idToken(issuer: String, clientID: String) -> TokenPolicy {
        idToken(issuer: issuer, clientIDs: [clientID])
    }

    /// An OIDC ID token for any of `clientIDs` (an agent acting for several clients).
    public static func idToken(issuer: String, clientIDs: Set<String>) -> TokenPolicy {
        var policy = TokenPolicy(issuer: issuer, audiences: clientIDs, types: [nil, "JWT"])
        policy.idTokenAudienceRules = true
        return policy
    }

    /// An RFC 9068 access token for `resource`.
    public static func accessToken(issuer: String, resource: String) -> TokenPolicy {
        TokenPolicy(issuer: issuer, audiences: [resource], types: ["at+jwt", "application/at+jwt"], maxLifetime: .seconds(86_400))
    }
}
