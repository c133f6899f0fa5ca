import Foundation
import Logging
import ServiceLifecycle

/// With replicas (`gateway.state`), what each replica saw is published to the shared store every
/// ``interval`` — each connection's activity (counts, last success and failure) and the users'
/// views that changed — so that every replica's `/api/connections/status` shows the same thing
/// (``StatusController`` merges what the others published with its own). Off the request path:
/// a call only marks a user's view as changed.
struct StatusSharing: Service {
    let holder: RegistryHolder
    let store: any SharedStateStore
    let replica: String
    let logger: Logger
    static let interval: Duration = .seconds(2)
    /// A replica that has not published for this long is left out (stopped, or cut off).
    static let peerWindow: Duration = .seconds(600)

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while true {
                try await Task.sleep(for: Self.interval)
                await publish()
            }
        }
        await publish()  // what happened since the last round, before the process goes
    }

    func publish() async {
        let encoder = JSONEncoder()
        var connections: [String: Data] = [:]
        var users: [SharedUserView] = []
        var taken: [(ConnectionActivity, [String: ConnectionActivity.UserView])] = []
        for c in holder.registry.connections {
            connections[c.name] = try? encoder.encode(c.activity.snapshot)
            let changed = c.activity.takeChangedUsers()
            guard !changed.isEmpty else { continue }
            taken.append((c.activity, changed))
            for (user, view) in changed {
                if let data = try? encoder.encode(view) { users.append(SharedUserView(connection: c.name, user: user, view: data, at: view.at)) }
            }
        }
        do {
            try await store.publish(replica: replica, connections: connections, users: users)
            for (activity, views) in taken { activity.markPublished(views) }
        } catch {
            for (activity, views) in taken { activity.requeue(views) }
            logger.debug("shared state: status not published", metadata: ["error": "\(error)"])
        }
    }
}
