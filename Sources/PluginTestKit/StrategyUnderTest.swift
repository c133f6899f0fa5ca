public import Foundation
import HTTPTypes
public import PluginAPI
import Synchronization

/// A provisioned strategy and what it was given, to call it as the gateway would.
public struct StrategyUnderTest: Sendable {
    public let strategy: any AuthStrategy
    /// The context every call gets (the one `makeStrategy` got).
    public let context: StrategyContext
    /// The context's clock.
    public let clock: TestClock
    /// Everything the plugin logged.
    public let log: CapturingLog
    /// Every `context.reportUse` call.
    public let uses: ReportedUses

    /// `credential(for:context:)` for `caller`.
    public func credential(for caller: CallerIdentity, scopes: Set<String>? = nil, reason: CredentialReason = .initial) async -> CredentialOutcome {
        await strategy.credential(for: CredentialRequest(caller: caller, scopes: scopes, reason: reason), context: context)
    }

    /// `stepUp(for:held:)` for an upstream that asked for `requiredScopes`.
    public func stepUp(requiredScopes: Set<String>, held: Credential) -> StepUpDecision {
        strategy.stepUp(for: ScopeChallenge(requiredScopes: requiredScopes), held: held)
    }

    /// `shutdown()`, as the gateway does when the connection leaves.
    public func shutdown() async { await strategy.shutdown() }
}

/// The `context.reportUse(connection, validUntil)` calls of a strategy.
public final class ReportedUses: Sendable {
    public struct Use: Sendable, Equatable {
        public var connection: String
        public var validUntil: Date?
    }

    private let recorded = Mutex<[Use]>([])

    init() {}

    /// Every call so far, in order.
    public var all: [Use] { recorded.withLock { $0 } }

    func record(_ connection: String, _ validUntil: Date?) {
        recorded.withLock { $0.append(Use(connection: connection, validUntil: validUntil)) }
    }
}

extension CredentialOutcome {
    /// The credential of `.inject`, else nil.
    public var injected: Credential? {
        if case .inject(let credential) = self { return credential }
        return nil
    }

    /// The interaction of `.interactionRequired`, else nil.
    public var interaction: InteractionRequired? {
        if case .interactionRequired(let interaction) = self { return interaction }
        return nil
    }

    /// The failure of `.failed`, else nil.
    public var failure: StrategyFailure? {
        if case .failed(let failure) = self { return failure }
        return nil
    }
}

extension Credential {
    /// The token of an `Authorization: Bearer …` header, else nil.
    public var bearerToken: String? {
        guard let value = headers[.authorization], value.hasPrefix("Bearer ") else { return nil }
        return String(value.dropFirst("Bearer ".count))
    }
}
