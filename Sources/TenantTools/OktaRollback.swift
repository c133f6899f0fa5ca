public import AsyncHTTPClient
import Foundation
import SwitchboardJSON

/// `switchboard okta rollback`: deletes what the state file lists, in reverse dependency order
/// — policy rule, policy, managed connections, AI agent, app assignments, apps, authorization
/// server, trusted origins — deactivating first where Okta requires it. An object already gone
/// is reported, not an error; a failure is reported and the rest still goes. The state file is
/// removed when nothing is left, else rewritten with what remains.
public struct OktaRollback: Sendable {
    public struct Outcome: Sendable, Equatable {
        public enum Result: String, Sendable { case deleted, alreadyGone = "already gone", failed }
        public var object: String
        public var id: String
        public var result: Result
        public var detail: String?
    }

    let client: OktaClient
    let statePath: String

    public init(org: String, token: String, statePath: String, httpClient: HTTPClient) {
        self.client = OktaClient(org: org, token: token, httpClient: httpClient)
        self.statePath = statePath
    }

    /// What the state file lists, in the order rollback deletes it (for the confirmation).
    public static func plan(_ state: OktaState) -> [(String, String)] {
        var items: [(String, String)] = []
        if let id = state.ruleID { items.append(("policy rule", id)) }
        if let id = state.policyID { items.append(("access policy", id)) }
        if let id = state.githubConnectionID { items.append(("managed connection (STS)", id)) }
        if let id = state.connectionID { items.append(("managed connection", id)) }
        if let id = state.agentID { items.append(("AI agent", id)) }
        for (app, user) in state.assignments.sorted(by: { $0.key < $1.key }) { items.append(("assignment of \(user) to app", app)) }
        for (app, group) in state.groupAssignments.sorted(by: { $0.key < $1.key }) { items.append(("assignment of group \(group) to app", app)) }
        if let id = state.todo0AppID { items.append(("OIDC web app todo0", id)) }
        if let id = state.agent0AppID { items.append(("OIDC web app agent0", id)) }
        if let id = state.authorizationServerID { items.append(("authorization server", id)) }
        for (name, id) in state.trustedOrigins.sorted(by: { $0.key < $1.key }) { items.append(("trusted origin \(name)", id)) }
        return items
    }

    public func run() async throws -> [Outcome] {
        guard var state = try OktaState.load(statePath) else { throw OktaToolError("no state file at \(statePath): nothing bootstrap created is known") }
        guard state.org == client.org else { throw OktaToolError("\(statePath) describes \(state.org), not \(client.org)") }
        var outcomes: [Outcome] = []
        /// Runs the steps of one object; 404 anywhere means it is already gone.
        func remove(_ object: String, _ id: String?, _ steps: () async throws -> Void) async -> Bool {
            guard let id else { return true }
            do {
                try await steps()
                outcomes.append(Outcome(object: object, id: id, result: .deleted))
                return true
            } catch let error as OktaAPIError where error.status == 404 {
                outcomes.append(Outcome(object: object, id: id, result: .alreadyGone))
                return true
            } catch {
                outcomes.append(Outcome(object: object, id: id, result: .failed, detail: "\(error)"))
                return false
            }
        }
        let server = state.authorizationServerID.map { "/api/v1/authorizationServers/\($0)" }
        let agents = "/workload-principals/api/v1/ai-agents"

        if let server, let policy = state.policyID,
           await remove("policy rule", state.ruleID, { try await client.call(.DELETE, "\(server)/policies/\(policy)/rules/\(state.ruleID ?? "")", what: "policy rule") }) {
            state.ruleID = nil
        }
        if let server, await remove("access policy", state.policyID, { try await client.call(.DELETE, "\(server)/policies/\(state.policyID ?? "")", what: "access policy") }) {
            state.policyID = nil
        }
        for (what, id) in [("managed connection (STS)", state.githubConnectionID), ("managed connection", state.connectionID)] {
            guard let agent = state.agentID, let id else { continue }
            if await remove(what, id, {
                let path = "\(agents)/\(agent)/connections/\(id)"
                try await client.call(.POST, "\(path)/lifecycle/deactivate", body: [:], what: "deactivating the \(what)")
                try await client.call(.DELETE, path, what: what)
            }) {
                if id == state.githubConnectionID { state.githubConnectionID = nil } else { state.connectionID = nil }
            }
        }
        if let agent = state.agentID, await remove("AI agent", agent, {
            let current = try await client.call(.GET, "\(agents)/\(agent)", what: "AI agent").body
            if current?["status"]?.string == "ACTIVE" {
                _ = try await client.operation(.POST, "\(agents)/\(agent)/lifecycle/deactivate", body: [:], what: "deactivating the AI agent")
            }
            _ = try await client.operation(.DELETE, "\(agents)/\(agent)", what: "deleting the AI agent")
        }) {
            state.agentID = nil
        }
        for (app, user) in state.assignments.sorted(by: { $0.key < $1.key }) {
            if await remove("assignment of \(user) to app \(app)", app, { try await client.call(.DELETE, "/api/v1/apps/\(app)/users/\(user)", what: "app assignment") }) {
                state.assignments[app] = nil
            }
        }
        for (app, group) in state.groupAssignments.sorted(by: { $0.key < $1.key }) {
            if await remove("assignment of group \(group) to app \(app)", app, { try await client.call(.DELETE, "/api/v1/apps/\(app)/groups/\(group)", what: "app group assignment") }) {
                state.groupAssignments[app] = nil
            }
        }
        for (label, id) in [("todo0", state.todo0AppID), ("agent0", state.agent0AppID)] {
            let ok = await remove("OIDC web app \(label)", id) {
                try await client.call(.POST, "/api/v1/apps/\(id ?? "")/lifecycle/deactivate", what: "deactivating app \(label)")
                try await client.call(.DELETE, "/api/v1/apps/\(id ?? "")", what: "app \(label)")
            }
            if ok, label == "todo0" { state.todo0AppID = nil }
            if ok, label == "agent0" { state.agent0AppID = nil; state.agent0ClientID = nil }
        }
        if let server, await remove("authorization server", state.authorizationServerID, {
            try await client.call(.POST, "\(server)/lifecycle/deactivate", what: "deactivating the authorization server")
            try await client.call(.DELETE, server, what: "authorization server")
        }) {
            state.authorizationServerID = nil
            state.scopeIDs = [:]
        }
        for (name, id) in state.trustedOrigins.sorted(by: { $0.key < $1.key }) {
            if await remove("trusted origin \(name)", id, { try await client.call(.DELETE, "/api/v1/trustedOrigins/\(id)", what: "trusted origin") }) {
                state.trustedOrigins[name] = nil
            }
        }
        if Self.plan(state).isEmpty {
            try? FileManager.default.removeItem(atPath: statePath)
        } else {
            try state.save(statePath)
        }
        return outcomes
    }
}
