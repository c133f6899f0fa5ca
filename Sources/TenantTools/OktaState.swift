import Foundation
import OAuthCore

/// `.switchboard/okta-state.json`: the id of every object bootstrap created or adopted, written
/// after each step (so a failure leaves a file describing what exists), read by re-runs (to
/// reuse, not duplicate) and by rollback (to delete, in reverse).
public struct OktaState: Codable, Sendable, Equatable {
    public var org: String
    public var authorizationServerID: String?
    /// Scope name → id.
    public var scopeIDs: [String: String] = [:]
    public var policyID: String?
    public var ruleID: String?
    public var agent0AppID: String?
    public var agent0ClientID: String?
    public var todo0AppID: String?
    /// App id → the user assigned to it by bootstrap.
    public var assignments: [String: String] = [:]
    /// App id → the group assigned to it by bootstrap (`--group`).
    public var groupAssignments: [String: String] = [:]
    public var agentID: String?
    public var agentKeyID: String?
    public var agentKeyFile: String?
    public var connectionID: String?
    /// The managed connection through OAuth STS to the app `--github-app` named.
    public var githubConnectionID: String?
    /// Trusted origins bootstrap created (name → id); those it found are not listed, so
    /// rollback leaves them.
    public var trustedOrigins: [String: String] = [:]

    enum CodingKeys: String, CodingKey {
        case org, scopeIDs = "scope_ids", policyID = "policy_id", ruleID = "rule_id", agent0AppID = "agent0_app_id"
        case authorizationServerID = "authorization_server_id", agent0ClientID = "agent0_client_id", todo0AppID = "todo0_app_id"
        case assignments, groupAssignments = "group_assignments", agentID = "agent_id", agentKeyID = "agent_key_id", agentKeyFile = "agent_key_file", connectionID = "connection_id"
        case githubConnectionID = "github_connection_id"
        case trustedOrigins = "trusted_origins"
    }

    public init(org: String) { self.org = org }

    public static func load(_ path: String) throws -> OktaState? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(OktaState.self, from: data)
        } catch {
            throw OktaToolError("\(path) is not a state file bootstrap wrote (\(error)); move it away to start afresh")
        }
    }

    /// Written to a temporary file and renamed over the old one (mode 600).
    public func save(_ path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try writePrivateFile(try encoder.encode(self), to: path)
    }
}

public struct OktaToolError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
