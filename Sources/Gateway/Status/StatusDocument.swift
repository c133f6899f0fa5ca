import Foundation

/// `GET /api/connections/status`: the registry's health and every connection's state.
/// No secret or token ever appears in it.
struct StatusDocument: Encodable {
    struct ConfigInfo: Encodable {
        var path: String
        var loadedAt: Date
        var generation: Int
        var lastReloadAttemptAt: Date?
        var lastError: ConfigProblem?
        var watch: Bool

        enum CodingKeys: String, CodingKey {
            case path, generation, watch
            case loadedAt = "loaded_at"
            case lastReloadAttemptAt = "last_reload_attempt_at"
            case lastError = "last_error"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(path, forKey: .path)
            try c.encode(generation, forKey: .generation)
            try c.encode(watch, forKey: .watch)
            try c.encode(loadedAt, forKey: .loadedAt)
            try c.encodeIfPresent(lastReloadAttemptAt, forKey: .lastReloadAttemptAt)
            try c.encode(lastError, forKey: .lastError)  // explicit null when healthy
        }
    }

    struct ConfigProblem: Encodable {
        var at: Date?
        var message: String
        var errors: [Item]
        struct Item: Encodable {
            var file: String
            var line: Int?
            var column: Int?
            var message: String
            var hint: String?
        }
    }

    struct ConnectionStatus: Encodable {
        var name: String
        var kind: String
        var title: String
        var strategy: String?
        var enabled: Bool
        var status: String
        var reason: String?
        var details: Details
        var lastSuccessAt: Date?
        var lastError: LastError?
        var counts: Counts

        enum CodingKeys: String, CodingKey {
            case name, kind, title, strategy, enabled, status, reason, details, counts
            case lastSuccessAt = "last_success_at"
            case lastError = "last_error"
        }
    }

    struct Details: Encodable {
        var upstream: String?
        var route: String?
        var resourceIndicator: String?
        var issuer: String?
        var authorizationServer: String?
        var agentID: String?
        var registrationID: String?
        var credentialExpiresAt: Date?
        var plugin: [String: String]?

        enum CodingKeys: String, CodingKey {
            case upstream, route, issuer, plugin
            case resourceIndicator = "resource_indicator"
            case authorizationServer = "authorization_server"
            case agentID = "agent_id"
            case registrationID = "registration_id"
            case credentialExpiresAt = "credential_expires_at"
        }
    }

    struct LastError: Encodable {
        var at: Date
        var code: String
        var message: String
    }

    struct Counts: Encodable {
        var requests: Int
        var failures: Int
        var upstreamErrors: Int
        var stepUps: Int
        var denied: Int
        var rateLimited: Int

        enum CodingKeys: String, CodingKey {
            case requests, failures, denied
            case rateLimited = "rate_limited"
            case upstreamErrors = "upstream_errors"
            case stepUps = "step_ups"
        }
    }

    /// One user's view (present when the request carried their ID token).
    struct UserView: Encodable {
        struct Item: Encodable {
            var name: String
            /// live, expired, consent_required, error
            var state: String
            var at: Date
            var interactionURI: String?
            var credentialExpiresAt: Date?
            var error: String?

            enum CodingKeys: String, CodingKey {
                case name, state, at, error
                case interactionURI = "interaction_uri"
                case credentialExpiresAt = "credential_expires_at"
            }
        }
        var subject: String
        var connections: [Item]
    }

    var config: ConfigInfo
    var connections: [ConnectionStatus]
    var user: UserView?
}
