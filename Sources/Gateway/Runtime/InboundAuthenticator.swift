import Foundation
import SwitchboardJSON
import NIOCore
import OAuthCore
import PluginAPI
import Synchronization

/// Verifies the user's ID token on every `/mcp` and `/rest` call.
///
/// A verified token is remembered (keyed by the token itself, until its `exp`) so the hot
/// path is one dictionary look-up, not a signature check and a JSON parse per request.
final class InboundAuthenticator: Sendable {
    let users: UsersConfig
    private let verifier: JWTVerifier
    private let clock: any GatewayClock
    private let verified = Mutex<[String: CallerIdentity]>([:])
    /// Verifications running for the event-loop path, by `Authorization` value, with the
    /// promises of the requests waiting for them: a burst of first calls with one token
    /// verifies it once and parks the rest as promises, not as tasks.
    private let verifying = Mutex<[String: [EventLoopPromise<CallerIdentity>]]>([:])
    private let capacity: Int

    init(users: UsersConfig, keySet: JWKSKeySet, clock: any GatewayClock, capacity: Int = 50_000) {
        self.users = users
        var policy = TokenPolicy.idToken(issuer: users.issuer, clientID: users.audience)
        if let algs = users.algorithms { policy.algorithms = Set(algs) }
        if let skew = users.clockSkew { policy.clockSkew = skew.duration }
        self.verifier = JWTVerifier(policy: policy, keySet: keySet, now: { clock.now() })
        self.clock = clock
        self.capacity = capacity
    }

    /// The caller behind an `Authorization` header value, or a 401 ``GatewayError``.
    func authenticate(_ authorization: String?) async throws(GatewayError) -> CallerIdentity {
        guard let authorization, !authorization.isEmpty else {
            throw GatewayError.invalidUserToken("this route needs 'Authorization: Bearer <ID token>'", errorParam: "invalid_request")
        }
        guard let token = Self.bearerToken(authorization) else {
            throw GatewayError.invalidUserToken("the Authorization header must use the Bearer scheme")
        }
        let now = clock.now()
        if let hit = remembered(token, now: now) { return hit }
        let claims: JWTClaims
        do {
            claims = try await verifier.verify(token)
        } catch {
            if error.code == .keysUnavailable {
                // The issuer is unreachable: the token may well be good. Say so, and when to retry.
                var e = GatewayError(code: "idp_unavailable", status: .serviceUnavailable, message: "the identity provider's signing keys could not be fetched; try again shortly")
                e.headers[.retryAfter] = "5"
                throw e
            }
            throw GatewayError.invalidUserToken("the ID token was rejected: \(error.message)")
        }
        let caller = CallerIdentity(
            subject: claims.subject ?? "", issuer: claims.issuer, audience: users.audience, userID: claims.uid, email: claims.email,
            name: claims.name, claims: Self.claimValues(ofVerified: token), expiresAt: claims.expiresAt, subjectToken: SubjectToken(token))
        verified.withLock { cache in
            if cache.count >= capacity {
                cache = cache.filter { $0.value.expiresAt > now }
                if cache.count >= capacity { cache.removeAll(keepingCapacity: true) }
            }
            cache[token] = caller
        }
        return caller
    }

    /// Every claim of a token whose signature was just verified (its payload, base64url JSON),
    /// each as its values in text, for policies.
    static func claimValues(ofVerified token: String) -> [String: [String]] {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return [:] }
        var b64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64), case .object(let object)? = JSONValue.parse(data) else { return [:] }
        var out: [String: [String]] = [:]
        for (name, value) in object {
            if case .array(let items) = value { out[name] = items.compactMap(Policy.scalarText) } else if let text = Policy.scalarText(value) { out[name] = [text] }
        }
        return out
    }

    /// The caller behind an `Authorization` header whose token was verified before and has not
    /// expired: the proxy's event-loop path, which never waits. nil: take the full path.
    func cachedCaller(_ authorization: String) -> CallerIdentity? {
        guard let token = Self.bearerToken(authorization) else { return nil }
        return remembered(token, now: clock.now())
    }

    /// The token of a `Bearer` header value (scheme in any case), or nil.
    private static func bearerToken(_ authorization: String) -> String? {
        guard authorization.utf8.count > 7,
              authorization.utf8.prefix(7).elementsEqual("Bearer ".utf8) || authorization.prefix(7).lowercased() == "bearer "
        else { return nil }
        return String(authorization.dropFirst(7).drop(while: { $0 == " " }))
    }

    /// A verified caller for `token` that has not expired (an expired one is forgotten).
    private func remembered(_ token: String, now: Date) -> CallerIdentity? {
        guard let hit = verified.withLock({ $0[token] }) else { return nil }
        if hit.expiresAt.addingTimeInterval(Double(verifier.policy.clockSkew.components.seconds)) > now { return hit }
        _ = verified.withLock { $0.removeValue(forKey: token) }
        return nil
    }

    /// ``authenticate(_:)`` for the event-loop path: the cached caller at once, else one
    /// verification per `Authorization` value however many requests wait for it. Fails with
    /// the ``GatewayError`` the async path would answer with.
    func authenticate(_ authorization: String, on loop: any EventLoop) -> EventLoopFuture<CallerIdentity> {
        if let hit = cachedCaller(authorization) { return loop.makeSucceededFuture(hit) }
        let promise = loop.makePromise(of: CallerIdentity.self)
        let first = verifying.withLock { running -> Bool in
            if running[authorization] != nil {
                running[authorization]!.append(promise)
                return false
            }
            running[authorization] = [promise]
            return true
        }
        if first {
            Task {
                let result: Result<CallerIdentity, GatewayError>
                do throws(GatewayError) { result = .success(try await self.authenticate(authorization)) } catch { result = .failure(error) }
                let waiting = self.verifying.withLock { $0.removeValue(forKey: authorization) ?? [] }
                for waiter in waiting { waiter.completeWith(result.mapError { $0 as any Error }) }
            }
        }
        return promise.futureResult
    }

    /// Same issuer, audience and settings: the new registry can keep this authenticator.
    func serves(_ other: UsersConfig) -> Bool { users == other }
}
