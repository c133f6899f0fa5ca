import Foundation
import PluginAPI

/// Key of a cached credential: the user (empty for shared credentials) and the scope set.
struct CredentialKey: Hashable, Sendable {
    var user: String
    var scopes: String
}

/// Asks a connection's plugin for a credential, through the connection's cache.
///
/// One implementation for every plugin: the plugin says what its credential depends on
/// (``CredentialScope``); concurrent first calls for one key run the plugin once; a
/// credential is reused until `refreshMargin` before it expires.
enum CredentialResolver {
    static let refreshMargin: TimeInterval = 30

    static func credential(
        for connection: Connection, caller: CallerIdentity, scopes: Set<String>? = nil, reason: CredentialReason = .initial
    ) async -> CredentialOutcome {
        guard let strategy = connection.strategy, let context = connection.strategyContext else {
            return .inject(Credential())
        }
        if let fixed = strategy.fixedCredential { return .inject(fixed) }
        let request = CredentialRequest(caller: caller, scopes: scopes, reason: reason)
        let user: String
        switch strategy.credentialScope {
        case .uncached: return await strategy.credential(for: request, context: context)
        case .shared: user = ""
        case .perUser: user = caller.userKey
        }
        let key = CredentialKey(user: user, scopes: scopes.map { $0.sorted().joined(separator: " ") } ?? "*")
        if reason != .initial { connection.credentials.remove(key) }
        do {
            return try await connection.credentials.value(forKey: key) {
                let outcome = await strategy.credential(for: request, context: context)
                guard case .inject(let credential) = outcome else { return (outcome, .none) }
                guard let expiry = credential.expiresAt else { return (outcome, .forever) }
                return (outcome, .until(expiry.addingTimeInterval(-refreshMargin)))
            }
        } catch {
            return .failed(StrategyFailure(code: "credential_failed", message: "the credential could not be obtained"))
        }
    }
}
