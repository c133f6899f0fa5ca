/// What a strategy needs of the world outside the gateway to work — read by `switchboard
/// doctor`, which checks each need live (the strategy is not provisioned, no user token is
/// involved). Derived from the plugin's config alone, like ``AuthStrategyFactory/validate(_:in:)``.
///
/// Why a declaration and not a check the plugin runs: doctor's checks (an authorization server's
/// metadata, a client assertion accepted, a protected resource naming its server) are the same
/// for every OAuth plugin; a plugin says which of them apply and with what values.
public struct StrategyRequirements: Sendable, Equatable {
    /// The `authorization_server` connection the strategy gets access tokens from (JWT-bearer
    /// grant at its token endpoint), and the scopes it asks for there on a first call.
    public var authorizationServer: String?
    public var scopes: [String]
    /// It exchanges the user's ID token at the org token endpoint (RFC 8693), authenticating
    /// as the agent: the endpoint configured here, or the users' issuer's when nil.
    public var exchangesAtOrg: Bool
    public var orgTokenEndpoint: String?
    /// The resource indicator it asks the org for (OAuth STS: the managed connection's).
    public var orgResource: String?
    /// The upstream is an OAuth protected resource whose metadata (RFC 9728) must name
    /// ``authorizationServer``'s issuer, with this resource indicator.
    public var protectedResource: String?

    public init(
        authorizationServer: String? = nil, scopes: [String] = [], exchangesAtOrg: Bool = false, orgTokenEndpoint: String? = nil,
        orgResource: String? = nil, protectedResource: String? = nil
    ) {
        self.authorizationServer = authorizationServer
        self.scopes = scopes
        self.exchangesAtOrg = exchangesAtOrg
        self.orgTokenEndpoint = orgTokenEndpoint
        self.orgResource = orgResource
        self.protectedResource = protectedResource
    }

    /// Nothing outside the gateway (the `none` strategy).
    public static let none = StrategyRequirements()
}
