import Foundation
import Testing

/// Codes, ID-JAGs and client assertions are single-use even when the same one arrives several
/// times at once.
@Suite("Single use under concurrency")
struct SingleUseTests {
    static let attempts = 8

    /// Runs `attempt` `attempts` times at once and returns the statuses.
    static func race(_ attempt: @escaping @Sendable () async throws -> Int) async throws -> [Int] {
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<attempts { group.addTask { try await attempt() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }

    @Test func authorizationCodeIsRedeemedOnce() async throws {
        try await withIdP { idp in
            let signIn = try await idp.signIn()
            let statuses = try await Self.race { try await idp.redeem(code: signIn.code, verifier: signIn.pkce.verifier).status }
            #expect(statuses.filter { $0 == 200 }.count == 1, "\(statuses)")
            #expect(statuses.filter { $0 == 400 }.count == Self.attempts - 1, "\(statuses)")
        }
    }

    @Test func idJAGIsRedeemedOnce() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let jag = try await idp.idJAG(for: user.idToken)
            let statuses = try await Self.race { try await idp.jwtBearer(jag).status }
            #expect(statuses.filter { $0 == 200 }.count == 1, "\(statuses)")
            #expect(statuses.filter { $0 == 400 }.count == Self.attempts - 1, "\(statuses)")
        }
    }

    @Test func clientAssertionIsAcceptedOnce() async throws {
        try await withIdP { idp in
            let user = try await idp.tokens()
            let auth = try idp.assertion(for: idp.tokenEndpoint)
            let statuses = try await Self.race { try await idp.exchange(subjectToken: user.idToken, auth: auth).status }
            #expect(statuses.filter { $0 == 200 }.count == 1, "\(statuses)")
            #expect(statuses.filter { $0 == 401 }.count == Self.attempts - 1, "\(statuses)")
        }
    }
}
