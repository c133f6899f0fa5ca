import Foundation
import OAuthCore
import Synchronization

/// The signing keys of one issuer (the org, a custom AS, a third-party app): generated on
/// first start, persisted, and published in its JWKS. After a rotation the old key stays
/// published for `retention`, so tokens it signed keep verifying until they expire.
final class KeyRing: Sendable {
    struct State: Sendable {
        var current: SigningKey
        var published: [SigningKey]
        var verifier: StaticKeySet
    }

    let owner: String
    private let store: IdPStore
    private let state: Mutex<State>
    static let retention: TimeInterval = 24 * 3600

    var current: SigningKey { state.withLock { $0.current } }
    var keySet: StaticKeySet { state.withLock { $0.verifier } }
    var jwks: String { jwksJSON(state.withLock { $0.published.map(\.publicJWK) }) }

    private init(owner: String, store: IdPStore, state: State) {
        self.owner = owner
        self.store = store
        self.state = Mutex(state)
    }

    static func load(owner: String, store: IdPStore) async throws -> KeyRing {
        if try store.signingKeys(owner: owner).isEmpty {
            let key = try SigningKey.generateRSA(kid: "\(owner.replacingOccurrences(of: ":", with: "-"))-\(RandomToken.make(bytes: 6))")
            try store.addSigningKey(owner: owner, kid: key.kid, pem: key.pemRepresentation, retiringOthersAt: nil)
        }
        return KeyRing(owner: owner, store: store, state: try await Self.state(owner: owner, store: store))
    }

    private static func state(owner: String, store: IdPStore) async throws -> State {
        let now = Date()
        let stored = try store.signingKeys(owner: owner)
        let live = stored.filter { $0.retiredAt.map { now.timeIntervalSince($0) < retention } ?? true }
        let keys = try live.map { try SigningKey(pem: $0.pem, kid: $0.kid) }
        guard let currentRecord = stored.last(where: { $0.retiredAt == nil }) ?? stored.last,
              let current = keys.first(where: { $0.kid == currentRecord.kid }) ?? keys.last
        else { throw IdPSetupError("no signing key for \(owner)") }
        let verifier = try await StaticKeySet(jwksJSON: jwksJSON(keys.map(\.publicJWK)))
        return State(current: current, published: keys, verifier: verifier)
    }

    /// Starts signing with a new key; the old one stays published for `retention`.
    func rotate() async throws {
        let key = try SigningKey.generateRSA(kid: "\(owner.replacingOccurrences(of: ":", with: "-"))-\(RandomToken.make(bytes: 6))")
        try store.addSigningKey(owner: owner, kid: key.kid, pem: key.pemRepresentation, retiringOthersAt: Date())
        let fresh = try await Self.state(owner: owner, store: store)
        state.withLock { $0 = fresh }
    }
}

struct IdPSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
