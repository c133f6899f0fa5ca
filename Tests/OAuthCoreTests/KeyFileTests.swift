import Foundation
import OAuthCore
import Testing

/// Key thumbprints (RFC 7638) and owner-only key files: what `idp --init-agent`, doctor and the
/// okta commands share.
@Suite("Key thumbprints and private files")
struct KeyFileTests {
    @Test("RFC 7638 §3.1's example JWK has the RFC's thumbprint (extra members ignored)")
    func rfcExample() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        #expect(jwkThumbprint(["kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"]) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    }

    @Test("a key's thumbprint does not depend on its kid; two keys differ")
    func keyThumbprint() throws {
        let a = try SigningKey.generateRSA(kid: "one")
        let same = try SigningKey(pem: a.pemRepresentation, kid: "another")
        #expect(a.thumbprint == same.thumbprint)
        #expect(a.thumbprint != SigningKey.generateEC(kid: "one").thumbprint)
    }

    @Test("a private key is written 0600 in a 0700 directory, and reads back")
    func privateKeyFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let key = try SigningKey.generateRSA(kid: "k")
        let path = dir + "/sub/agent.pem"
        try key.writePrivateKey(to: path)
        let mode = try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber).intValue
        let dirMode = try #require(FileManager.default.attributesOfItem(atPath: dir + "/sub")[.posixPermissions] as? NSNumber).intValue
        #expect(mode == 0o600 && dirMode == 0o700)
        #expect(try SigningKey(pem: String(contentsOfFile: path, encoding: .utf8), kid: "k").thumbprint == key.thumbprint)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
    }
}
