import Crypto
import Foundation
import Gateway
import HTTPTypes
import PluginAPI

/// Seals credentials for the database: AES-256-GCM, with the row's key as associated data, so a
/// sealed credential opens only under the key (connection, user, scopes) it was stored for — a
/// row copied onto another user's key does not open.
///
/// The keys come from `gateway.state_key` (secrets of 32 characters or more), each stretched to
/// 256 bits with HKDF-SHA256. The first seals; every one opens, so a key is rotated by putting
/// the new one first and keeping the old one listed until the credentials it sealed expired.
struct CredentialSeal: Sendable {
    struct Key: Sendable {
        /// Names the key in a row without revealing anything of it.
        var id: String
        var key: SymmetricKey
    }

    let keys: [Key]

    init(secrets: [Secret]) throws {
        guard !secrets.isEmpty else { throw StateStoreError("gateway.state needs gateway.state_key") }
        keys = secrets.map { secret in
            let key = HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: Data(secret.reveal().utf8)), info: Data("switchboard state seal v1".utf8), outputByteCount: 32)
            let id = key.withUnsafeBytes { Data(SHA256.hash(data: Data("switchboard key id".utf8) + Data($0))) }.prefix(6).map { String(format: "%02x", $0) }.joined()
            return Key(id: id, key: key)
        }
    }

    /// A row's key: SHA-256 of its parts joined by NUL (a credential's: connection, user, scopes).
    static func rowKey(_ parts: String...) -> Data {
        Data(SHA256.hash(data: Data(parts.joined(separator: "\u{0}").utf8)))
    }

    static func rowKey(_ key: SharedCredentialKey) -> Data { rowKey(key.connection, key.user, key.scopes) }

    func seal(_ credential: Credential, rowKey: Data) throws -> (keyID: String, sealed: Data) {
        let current = keys[0]
        let plain = try JSONEncoder().encode(Stored(credential))
        let box = try AES.GCM.seal(plain, using: current.key, authenticating: rowKey)
        guard let combined = box.combined else { throw StateStoreError("AES-GCM gave no combined box") }
        return (current.id, combined)
    }

    /// The credential, or nil when no listed key opens it (a key retired too early, or a row
    /// that is not this key's).
    func open(_ sealed: Data, keyID: String, rowKey: Data) -> Credential? {
        guard let key = keys.first(where: { $0.id == keyID }),
              let box = try? AES.GCM.SealedBox(combined: sealed),
              let plain = try? AES.GCM.open(box, using: key.key, authenticating: rowKey),
              let stored = try? JSONDecoder().decode(Stored.self, from: plain)
        else { return nil }
        return stored.credential
    }

    /// A token of `payload` for `purpose`: base64url of key id, nonce, ciphertext and tag, so any
    /// replica with the key opens it (and one made for another purpose does not open).
    func sealToken(_ payload: Data, purpose: String) throws -> String {
        let current = keys[0]
        let box = try AES.GCM.seal(payload, using: current.key, authenticating: Data(purpose.utf8))
        guard let combined = box.combined else { throw StateStoreError("AES-GCM gave no combined box") }
        return current.id + "." + Self.base64url(combined)
    }

    func openToken(_ token: String, purpose: String) -> Data? {
        let parts = token.split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let key = keys.first(where: { $0.id == parts[0] }), let combined = Self.unbase64url(String(parts[1])),
              let box = try? AES.GCM.SealedBox(combined: combined)
        else { return nil }
        return try? AES.GCM.open(box, using: key.key, authenticating: Data(purpose.utf8))
    }

    static func base64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func unbase64url(_ text: String) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }

    /// What is sealed: the headers to inject, the expiry, the scopes.
    private struct Stored: Codable {
        var headers: [[String]]
        var expiresAt: Date?
        var scopes: [String]

        init(_ c: Credential) {
            headers = c.headers.map { [$0.name.rawName, $0.value] }
            expiresAt = c.expiresAt
            scopes = c.scopes.sorted()
        }

        var credential: Credential? {
            var fields = HTTPFields()
            for pair in headers {
                guard pair.count == 2, let name = HTTPField.Name(pair[0]) else { return nil }
                fields.append(HTTPField(name: name, value: pair[1]))
            }
            return Credential(headers: fields, expiresAt: expiresAt, scopes: Set(scopes))
        }
    }
}

/// Why the shared state could not start or answer (no secret in it).
public struct StateStoreError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
