import SystemTesting

/// The real development identity provider, shared with the other plugin suites (SystemTesting).
typealias DevelopmentIdP = SystemTesting.DevelopmentIdP

/// Runs `body` with a fresh IdP, removed afterwards whatever happens.
func withIdP(_ body: (DevelopmentIdP) async throws -> Void) async throws { try await withDevelopmentIdP(body) }
