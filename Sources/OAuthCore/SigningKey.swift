import Crypto
import _CryptoExtras
public import Foundation

/// A private key that signs JWTs (RS256 with RSA ≥ 2048 bits, or ES256 with P-256), with
/// its `kid` and the public JWK to publish. Its descriptions never print key material.
public struct SigningKey: Sendable, CustomStringConvertible {
    public enum Algorithm: String, Sendable {
        case rs256 = "RS256"
        case es256 = "ES256"
    }

    enum Material: Sendable {
        case rsa(_RSA.Signing.PrivateKey)
        case ec(P256.Signing.PrivateKey)
    }

    public let kid: String
    let material: Material

    public var algorithm: Algorithm {
        switch material {
        case .rsa: return .rs256
        case .ec: return .es256
        }
    }

    /// A new RSA-2048 key.
    public static func generateRSA(kid: String) throws -> SigningKey {
        SigningKey(kid: kid, material: .rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048)))
    }

    /// A new P-256 key.
    public static func generateEC(kid: String) -> SigningKey {
        SigningKey(kid: kid, material: .ec(P256.Signing.PrivateKey()))
    }

    init(kid: String, material: Material) {
        self.kid = kid
        self.material = material
    }

    /// Reads a PEM private key (PKCS#1, PKCS#8 or SEC1); RSA keys under 2048 bits are refused.
    public init(pem: String, kid: String) throws {
        self.kid = kid
        if let ec = try? P256.Signing.PrivateKey(pemRepresentation: pem) {
            material = .ec(ec)
            return
        }
        let rsa = try _RSA.Signing.PrivateKey(pemRepresentation: pem)
        guard rsa.keySizeInBits >= 2048 else { throw SigningKeyError.keyTooSmall }
        material = .rsa(rsa)
    }

    /// The private key as PEM (for storing it; never log it).
    public var pemRepresentation: String {
        switch material {
        case .rsa(let k): return k.pemRepresentation
        case .ec(let k): return k.pemRepresentation
        }
    }

    /// The public key as a JWK (`kty`, `kid`, `use`, `alg` and the key parameters).
    public var publicJWK: [String: String] {
        switch material {
        case .rsa(let k):
            let p = try! k.publicKey.getKeyPrimitives()
            return ["kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": Base64URL.encode(p.modulus), "e": Base64URL.encode(p.publicExponent)]
        case .ec(let k):
            let raw = k.publicKey.rawRepresentation
            return ["kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256", "x": Base64URL.encode(raw.prefix(32)), "y": Base64URL.encode(raw.suffix(32))]
        }
    }

    /// Signs `claims` as a compact JWS with header `{alg, kid, typ}`.
    public func sign(claims: [String: any Sendable], type: String? = "JWT") throws -> String {
        var header: [String: String] = ["alg": algorithm.rawValue, "kid": kid]
        if let type { header["typ"] = type }
        let h = Base64URL.encode(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        let p = Base64URL.encode(try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys, .withoutEscapingSlashes]))
        let input = Data((h + "." + p).utf8)
        let signature: Data
        switch material {
        case .rsa(let k): signature = try k.signature(for: input, padding: .insecurePKCS1v1_5).rawRepresentation
        case .ec(let k): signature = try k.signature(for: input).rawRepresentation
        }
        return h + "." + p + "." + Base64URL.encode(signature)
    }

    public var description: String { "SigningKey(kid: \(kid), alg: \(algorithm.rawValue), <private>)" }
}

public enum SigningKeyError: Error, Sendable {
    case keyTooSmall
}

/// A JWKS document for a list of public JWKs.
public func jwksJSON(_ keys: [[String: String]]) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: ["keys": keys], options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    return String(decoding: data, as: UTF8.self)
}

extension SigningKey {
    /// RFC 7638 thumbprint of the public key (base64url SHA-256 of its required members).
    public var thumbprint: String { jwkThumbprint(publicJWK) }

    /// Writes the private key (PEM) owner-only (0600, its directory 0700) through a temporary
    /// file renamed over `path`, so no reader ever sees half a key.
    public func writePrivateKey(to path: String) throws {
        try writePrivateFile(Data(pemRepresentation.utf8), to: path)
    }
}

/// RFC 7638 thumbprint of a public JWK (RSA: `e`, `kty`, `n`; EC: `crv`, `kty`, `x`, `y`).
public func jwkThumbprint(_ jwk: [String: String]) -> String {
    let members: [String] = jwk["kty"] == "RSA" ? ["e", "kty", "n"] : ["crv", "kty", "x", "y"]
    let json = "{" + members.map { "\"\($0)\":\"\(jwk[$0] ?? "")\"" }.joined(separator: ",") + "}"
    return Base64URL.encode(Data(SHA256.hash(data: Data(json.utf8))))
}

/// Writes `data` owner-only (0600; a directory it creates 0700) through a temporary file
/// renamed over `path`: keys, secrets and state files.
public func writePrivateFile(_ data: Data, to path: String) throws {
    let directory = (path as NSString).deletingLastPathComponent
    if !directory.isEmpty {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }
    let tmp = path + ".tmp"
    guard FileManager.default.createFile(atPath: tmp, contents: data, attributes: [.posixPermissions: 0o600]) else { throw PrivateFileError(path: tmp) }
    guard rename(tmp, path) == 0 else { throw PrivateFileError(path: path) }
    try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
}

public struct PrivateFileError: Error, CustomStringConvertible {
    public var path: String
    public var description: String { "cannot write \(path)" }
}
