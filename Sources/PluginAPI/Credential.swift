public import Foundation
public import HTTPTypes

/// Headers a plugin wants injected into the upstream request, and how long they are good for.
public struct Credential: Sendable, CustomStringConvertible {
    /// Headers to set on the upstream request (replacing any of the same name).
    public var headers: HTTPFields
    /// When the credential stops being valid; nil = does not expire.
    public var expiresAt: Date?
    /// The scopes the credential carries (for step-up and status).
    public var scopes: Set<String>

    public init(headers: HTTPFields = [:], expiresAt: Date? = nil, scopes: Set<String> = []) {
        self.headers = headers
        self.expiresAt = expiresAt
        self.scopes = scopes
    }

    /// A bearer token credential.
    public static func bearer(_ token: String, expiresAt: Date?, scopes: Set<String> = []) -> Credential {
        var headers = HTTPFields()
        headers[.authorization] = "Bearer " + token
        return Credential(headers: headers, expiresAt: expiresAt, scopes: scopes)
    }

    /// No header values: they carry secrets.
    public var description: String {
        "Credential(headers: \(headers.map(\.name.canonicalName)), expiresAt: \(expiresAt.map { "\($0)" } ?? "never"), scopes: \(scopes.sorted()))"
    }
}

/// What a plugin answers when asked for a credential.
public enum CredentialOutcome: Sendable {
    /// Inject these headers and forward.
    case inject(Credential)
    /// The user must act first (e.g. consent) at `uri`; the gateway tells the agent.
    case interactionRequired(InteractionRequired)
    /// No credential could be had.
    case failed(StrategyFailure)
}

/// A user interaction the IdP needs before a credential can be issued.
public struct InteractionRequired: Sendable, Equatable {
    /// Where the user's browser must go.
    public var uri: String
    /// A human sentence for the agent to show.
    public var message: String

    public init(uri: String, message: String) {
        self.uri = uri
        self.message = message
    }
}

/// Why a plugin could not provide a credential. Never put a token in it.
public struct StrategyFailure: Error, Sendable, Equatable {
    /// Stable code for the agent and metrics, e.g. `token_exchange_failed`.
    public var code: String
    /// A human sentence.
    public var message: String
    /// Extra detail safe to show (e.g. the upstream AS's `error` and `error_description`).
    public var detail: String?
    /// The HTTP status the gateway should answer with (default 502).
    public var httpStatus: Int
    /// Seconds after which a retry may succeed (sent as `Retry-After`, e.g. IdP unavailable).
    public var retryAfter: Int?

    public init(code: String, message: String, detail: String? = nil, httpStatus: Int = 502, retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.detail = detail
        self.httpStatus = httpStatus
        self.retryAfter = retryAfter
    }
}

/// Why the gateway asks for a credential.
public enum CredentialReason: Sendable, Equatable {
    /// First request for this key, or the cached one expired.
    case initial
    /// The upstream rejected the previous credential (401); get a fresh one.
    case refresh
    /// The upstream asked for more scopes; get a credential carrying these.
    case stepUp
}

/// A request for a credential.
public struct CredentialRequest: Sendable {
    /// The verified user.
    public var caller: CallerIdentity
    /// Scopes wanted; nil means the connection's configured default.
    public var scopes: Set<String>?
    public var reason: CredentialReason

    public init(caller: CallerIdentity, scopes: Set<String>? = nil, reason: CredentialReason = .initial) {
        self.caller = caller
        self.scopes = scopes
        self.reason = reason
    }
}

/// An upstream's demand for more scopes (HTTP 403 `insufficient_scope`, or an MCP tool
/// result carrying the same JSON).
public struct ScopeChallenge: Sendable, Equatable {
    /// All scopes the upstream says it needs.
    public var requiredScopes: Set<String>

    public init(requiredScopes: Set<String>) { self.requiredScopes = requiredScopes }
}

/// A plugin's answer to a scope challenge.
public enum StepUpDecision: Sendable, Equatable {
    /// Ask again with these scopes (usually held ∪ challenged).
    case possible(scopes: Set<String>)
    /// This strategy cannot widen its credential.
    case notPossible(reason: String)
}

/// What a cached credential depends on: the gateway keys its cache by this.
public enum CredentialScope: Sendable, Equatable {
    /// Nothing to cache (cheap or static): ask the plugin every time.
    case uncached
    /// One credential for every caller of the connection.
    case shared
    /// One credential per user (and scope set).
    case perUser
}
