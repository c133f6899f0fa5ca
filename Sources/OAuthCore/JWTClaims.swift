public import Foundation
import JWTKit

/// The registered and commonly used claims of a verified JWT.
public struct JWTClaims: Sendable, Equatable {
    public var issuer: String
    public var subject: String?
    public var audience: [String]
    public var expiresAt: Date
    public var issuedAt: Date?
    public var notBefore: Date?
    public var jwtID: String?
    /// Okta's stable user id.
    public var uid: String?
    public var email: String?
    public var name: String?
    public var clientID: String?
    /// Scopes from `scp` (array) or `scope` (space separated).
    public var scopes: [String]
    /// `act.sub` (the actor, for delegated tokens).
    public var actorSubject: String?
    public var resource: String?
    public var nonce: String?
}

/// The payload as jwt-kit decodes it; claim checks are done by ``JWTVerifier`` with its own clock.
struct RawClaims: JWTPayload {
    var iss: String?
    var sub: String?
    var aud: Audience?
    var exp: Double?
    var iat: Double?
    var nbf: Double?
    var jti: String?
    var uid: String?
    var email: String?
    var name: String?
    var client_id: String?
    var scp: StringOrList?
    var scope: String?
    var act: Actor?
    var resource: String?
    var nonce: String?
    var azp: String?

    struct Actor: Codable, Sendable { var sub: String? }

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// `aud` may be one string or a list.
struct Audience: Codable, Sendable {
    var values: [String]
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let one = try? c.decode(String.self) { values = [one] } else { values = try c.decode([String].self) }
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if values.count == 1 { try c.encode(values[0]) } else { try c.encode(values) }
    }
}

/// `scp` may be a list (Okta) or a space-separated string.
struct StringOrList: Codable, Sendable {
    var values: [String]
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let one = try? c.decode(String.self) {
            values = one.split(separator: " ").map(String.init)
        } else {
            values = try c.decode([String].self)
        }
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(values)
    }
}
