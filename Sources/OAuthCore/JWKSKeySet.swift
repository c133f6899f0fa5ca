public import AsyncHTTPClient
import Foundation
import JWTKit
public import Logging
import NIOCore

/// The signing keys of one issuer, fetched over HTTP and kept fresh.
///
/// Keys come only from the issuer's own JWKS (found through its discovery document unless a
/// `jwks_uri` is given). An unknown `kid` triggers at most one refetch per `cooldown`, so a
/// flood of tokens with random `kid`s cannot turn into a flood of fetches; concurrent
/// fetches are collapsed into one.
public actor JWKSKeySet: JWTKeyProvider {
    /// The issuer whose keys these are.
    public let issuer: String
    private let configuredJWKSURI: String?
    private let httpClient: HTTPClient
    private let cooldown: Duration
    private let maxAge: Duration
    private let logger: Logger

    private var keys = JWTKeyCollection()
    private var jwks: [String: JWK] = [:]
    private var fetchedAt: ContinuousClock.Instant?
    private var inflight: Task<Void, any Error>?

    /// - Parameters:
    ///   - issuer: the issuer URL; discovery is `{issuer}/.well-known/openid-configuration`,
    ///     then `{issuer}/.well-known/oauth-authorization-server`.
    ///   - jwksURI: skip discovery and fetch keys from here.
    ///   - cooldown: minimum time between two fetches caused by unknown `kid`s.
    ///   - maxAge: keys older than this are refetched on next use.
    public init(
        issuer: String, jwksURI: String? = nil, httpClient: HTTPClient, cooldown: Duration = .seconds(30),
        maxAge: Duration = .seconds(3600), logger: Logger = Logger(label: "switchboard.jwks")
    ) {
        self.issuer = issuer
        self.configuredJWKSURI = jwksURI
        self.httpClient = httpClient
        self.cooldown = cooldown
        self.maxAge = maxAge
        self.logger = logger
    }

    /// The key for `kid`, fetching or refetching as the rules allow.
    public func key(for kid: String) async throws(TokenValidationError) -> JWTKeyMaterial {
        let now = ContinuousClock.now
        let stale = fetchedAt.map { now - $0 > maxAge } ?? true
        if let jwk = jwks[kid], !stale { return JWTKeyMaterial(collection: keys, jwk: jwk) }
        let mayFetch = fetchedAt.map { now - $0 >= cooldown } ?? true
        if mayFetch || stale {
            do {
                try await refresh()
            } catch {
                logger.warning("jwks fetch failed", metadata: ["issuer": "\(issuer)", "error": "\(error)"])
                if let jwk = jwks[kid] { return JWTKeyMaterial(collection: keys, jwk: jwk) }  // serve stale keys rather than nothing
                throw TokenValidationError(.keysUnavailable, "the issuer's signing keys could not be fetched")
            }
        }
        guard let jwk = jwks[kid] else {
            throw TokenValidationError(.unknownKey, "no key with this kid at the issuer")
        }
        return JWTKeyMaterial(collection: keys, jwk: jwk)
    }

    /// Fetches the JWKS now (single flight).
    public func refresh() async throws {
        if let inflight { return try await inflight.value }
        let task = Task { try await self.fetch() }
        inflight = task
        defer { inflight = nil }
        try await task.value
    }

    private func fetch() async throws {
        let uri: String
        if let configuredJWKSURI {
            uri = configuredJWKSURI
        } else {
            uri = try await discoverJWKSURI()
        }
        let body = try await getJSON(uri)
        let set = try JSONDecoder().decode(JWKSDocument.self, from: body)
        let fresh = JWTKeyCollection()
        var found: [String: JWK] = [:]
        for jwk in set.keys {
            guard let kid = jwk.keyIdentifier?.string, jwk.privateExponent == nil else { continue }
            do {
                try await fresh.add(jwk: jwk)
                found[kid] = jwk
            } catch {
                logger.debug("skipping unusable JWK", metadata: ["kid": "\(kid)"])
            }
        }
        keys = fresh
        jwks = found
        fetchedAt = .now
        logger.debug("jwks fetched", metadata: ["issuer": "\(issuer)", "keys": "\(found.count)"])
    }

    private func discoverJWKSURI() async throws -> String {
        let base = issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer
        var lastError: (any Error)?
        for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
            do {
                let doc = try JSONDecoder().decode(DiscoveryDocument.self, from: try await getJSON(base + path))
                guard doc.issuer == issuer else {
                    throw TokenValidationError(.wrongIssuer, "discovery document names issuer '\(doc.issuer)', expected '\(issuer)'")
                }
                return doc.jwks_uri
            } catch {
                lastError = error
            }
        }
        throw lastError ?? TokenValidationError(.keysUnavailable, "no discovery document")
    }

    private func getJSON(_ url: String) async throws -> Data {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        let response = try await httpClient.execute(request, timeout: .seconds(10))
        guard response.status == .ok else {
            throw TokenValidationError(.keysUnavailable, "GET \(url) answered \(response.status.code)")
        }
        let buffer = try await response.body.collect(upTo: 1 << 20)
        return Data(buffer.readableBytesView)
    }
}

private struct DiscoveryDocument: Decodable {
    var issuer: String
    var jwks_uri: String
}

/// Decodes the key list leniently: a key jwt-kit cannot read is skipped, not fatal.
private struct JWKSDocument: Decodable {
    var keys: [JWK]
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var list = try c.nestedUnkeyedContainer(forKey: .keys)
        var out: [JWK] = []
        while !list.isAtEnd {
            if let key = try? list.decode(JWK.self) { out.append(key) } else { _ = try? list.decode(Skip.self) }
        }
        keys = out
    }
    private enum CodingKeys: String, CodingKey { case keys }
    private struct Skip: Decodable {}
}
