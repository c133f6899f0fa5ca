import Foundation
@testable import Gateway
import Testing

/// What a replica publishes of its users' views (`gateway.state`, StatusSharing): a view is
/// handed over when it changed since the last publication — not on every call, and not because
/// the user was evicted from the 10,000 views kept for the status endpoint.
@Suite("Connection activity: the users' views a replica publishes")
struct UnitConnectionActivityTests {
    static func live(_ at: Double, expires: Double = 2_000_000_000) -> ConnectionActivity.UserView {
        .init(state: "live", at: Date(timeIntervalSince1970: at), credentialExpiresAt: Date(timeIntervalSince1970: expires))
    }

    @Test("the same view again is not a change; a new expiry or state is; a failed publication is handed over again")
    func changes() {
        let activity = ConnectionActivity(shared: true)
        for t in 0..<3 { activity.recordUser("alice", Self.live(Double(t))) }
        let first = activity.takeChangedUsers()
        #expect(Array(first.keys) == ["alice"])
        activity.markPublished(first)
        activity.recordUser("alice", Self.live(10))
        #expect(activity.takeChangedUsers().isEmpty)
        activity.recordUser("alice", Self.live(11, expires: 2_000_003_600))
        let renewed = activity.takeChangedUsers()
        #expect(renewed["alice"]?.credentialExpiresAt == Date(timeIntervalSince1970: 2_000_003_600))
        activity.requeue(renewed)  // the publication failed
        #expect(activity.takeChangedUsers().keys.contains("alice"))
        activity.recordUser("alice", .init(state: "consent_required", at: Date(), interactionURI: "https://idp/i/1"))
        #expect(activity.takeChangedUsers()["alice"]?.state == "consent_required")
    }

    @Test("a user evicted from the status views (more than 10,000) is not published again unchanged")
    func evictionIsNotAChange() {
        let activity = ConnectionActivity(shared: true)
        activity.recordUser("alice", Self.live(0))
        activity.markPublished(activity.takeChangedUsers())
        for i in 0...ConnectionActivity.maxUsers { activity.recordUser("user-\(i)", Self.live(Double(i))) }
        #expect(activity.user("alice") == nil)  // evicted from the views
        activity.markPublished(activity.takeChangedUsers())
        activity.recordUser("alice", Self.live(99))
        #expect(activity.takeChangedUsers().isEmpty)
    }

    @Test("without replicas nothing is kept for publication")
    func singleProcess() {
        let activity = ConnectionActivity()
        activity.recordUser("alice", Self.live(0))
        #expect(activity.takeChangedUsers().isEmpty)
        #expect(activity.user("alice")?.state == "live")
    }
}
