/// A running auth strategy for one connection: answers "which credential for this caller?"
/// and "can you widen it to these scopes?".
///
/// Lifecycle (fixed, driven by the gateway): the factory decodes and validates the `auth`
/// block → ``AuthStrategyFactory/makeStrategy(_:context:)`` provisions the strategy →
/// ``credential(for:context:)`` serves requests (concurrently) → ``shutdown()`` when the
/// connection leaves the registry or the gateway stops.
///
/// Caching and single flight are the gateway's job: declare ``credentialScope`` and return a
/// credential with an `expiresAt`; the gateway reuses it until shortly before that time.
public protocol AuthStrategy: Sendable {
    /// What the credential depends on; the gateway caches by it.
    var credentialScope: CredentialScope { get }

    /// Facts for the status panel (e.g. `authorization_server`). No secrets.
    var statusDetails: [String: String] { get }

    /// A credential that is the same for every caller and never expires (the `none` strategy's
    /// empty one), or nil. When set, the gateway injects it without calling ``credential(for:context:)``.
    var fixedCredential: Credential? { get }

    /// Produce a credential for a verified caller.
    func credential(for request: CredentialRequest, context: StrategyContext) async -> CredentialOutcome

    /// Decide whether a scope challenge can be met, given the credential that was refused.
    func stepUp(for challenge: ScopeChallenge, held: Credential) -> StepUpDecision

    /// Release resources. Called once; no calls to `credential` follow.
    func shutdown() async
}

extension AuthStrategy {
    public var statusDetails: [String: String] { [:] }

    public var fixedCredential: Credential? { nil }

    public func stepUp(for challenge: ScopeChallenge, held: Credential) -> StepUpDecision {
        .notPossible(reason: "this strategy has no scopes to widen")
    }

    public func shutdown() async {}
}
