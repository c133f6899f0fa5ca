import Foundation
import HTTPTypes
import PluginAPI
@testable import PostgresState
import Testing

/// The sealing of what replicas share (no database needed): a credential opens only under its own
/// row key and with a listed key; rotation (a new key first, the old one still listed) opens both;
/// a token opens only for its purpose. The database side is Tests/interop/test_scale_out.py's.
@Suite("Credential sealing")
struct CredentialSealTests {
    static let old = Secret(String(repeating: "o", count: 40))
    static let new = Secret(String(repeating: "n", count: 40))

    static func credential() -> Credential {
        .bearer("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln", expiresAt: Date(timeIntervalSince1970: 2_000_000_000), scopes: ["mcp:connect", "mcp:tools:read"])
    }

    static func row(_ user: String) -> Data { CredentialSeal.rowKey("todo0", user, "mcp:connect mcp:tools:read") }

    @Test("a sealed credential opens whole under its row key, and nothing of it is in clear")
    func roundTrip() throws {
        let seal = try CredentialSeal(secrets: [Self.old])
        let (keyID, sealed) = try seal.seal(Self.credential(), rowKey: Self.row("alice"))
        let opened = try #require(seal.open(sealed, keyID: keyID, rowKey: Self.row("alice")))
        #expect(opened.headers[.authorization] == Self.credential().headers[.authorization])
        #expect(opened.expiresAt == Self.credential().expiresAt && opened.scopes == Self.credential().scopes)
        #expect(!String(decoding: sealed, as: UTF8.self).contains("eyJ"))
        #expect(keyID.count == 12 && !Self.old.reveal().contains(keyID))
    }

    @Test("another user's row key, another key, or a changed byte: it does not open")
    func boundToItsRow() throws {
        let seal = try CredentialSeal(secrets: [Self.old])
        let (keyID, sealed) = try seal.seal(Self.credential(), rowKey: Self.row("alice"))
        #expect(seal.open(sealed, keyID: keyID, rowKey: Self.row("bob")) == nil)
        #expect(try CredentialSeal(secrets: [Self.new]).open(sealed, keyID: keyID, rowKey: Self.row("alice")) == nil)
        var tampered = sealed
        tampered[tampered.count - 1] ^= 1
        #expect(seal.open(tampered, keyID: keyID, rowKey: Self.row("alice")) == nil)
    }

    @Test("rotation: the new key seals, both open; the old key alone cannot open what the new sealed")
    func rotation() throws {
        let before = try CredentialSeal(secrets: [Self.old])
        let during = try CredentialSeal(secrets: [Self.new, Self.old])
        let (oldID, oldSealed) = try before.seal(Self.credential(), rowKey: Self.row("alice"))
        let (newID, newSealed) = try during.seal(Self.credential(), rowKey: Self.row("alice"))
        #expect(oldID != newID)
        #expect(during.open(oldSealed, keyID: oldID, rowKey: Self.row("alice")) != nil)
        #expect(during.open(newSealed, keyID: newID, rowKey: Self.row("alice")) != nil)
        #expect(before.open(newSealed, keyID: newID, rowKey: Self.row("alice")) == nil)
    }

    @Test("a token opens for its purpose only, with any listed key, and not when altered")
    func tokens() throws {
        let seal = try CredentialSeal(secrets: [Self.new, Self.old])
        let payload = Data(#"{"owner":"alice"}"#.utf8)
        let token = try seal.sealToken(payload, purpose: "mcp-session")
        #expect(token.allSatisfy { $0.isASCII && !$0.isWhitespace && $0 != "=" })
        #expect(seal.openToken(token, purpose: "mcp-session") == payload)
        #expect(seal.openToken(token, purpose: "other") == nil)
        #expect(try CredentialSeal(secrets: [Self.old]).openToken(token, purpose: "mcp-session") == nil)
        let altered = String(token.dropLast()) + (token.last == "A" ? "B" : "A")
        #expect(seal.openToken(altered, purpose: "mcp-session") == nil)
        #expect(seal.openToken("not-a-token", purpose: "mcp-session") == nil)
    }

    @Test("no key: refused")
    func needsAKey() {
        #expect(throws: StateStoreError.self) { try CredentialSeal(secrets: []) }
    }

    @Test("the URL: user, host, port, database and TLS mode read; a bad one refused without its password")
    func configuration() throws {
        let c = try PostgresStateStore.configuration(.init(url: "postgres://sb:p%40ss@db.example:6543/state?sslmode=disable", password: nil, keys: [Self.old]))
        #expect(c.host == "db.example" && c.port == 6543 && c.username == "sb" && c.password == "p@ss" && c.database == "state")
        let fromFile = try PostgresStateStore.configuration(.init(url: "postgresql://sb@db/state", password: Secret("from-file"), keys: [Self.old]))
        #expect(fromFile.password == "from-file" && fromFile.port == 5432)
        do {
            _ = try PostgresStateStore.configuration(.init(url: "mysql://sb:secret@db/state", password: nil, keys: [Self.old]))
            Issue.record("a mysql URL was taken")
        } catch {
            #expect(!"\(error)".contains("secret"))
        }
        #expect(throws: StateStoreError.self) {
            try PostgresStateStore.configuration(.init(url: "postgres://sb@db/state?sslmode=maybe", password: nil, keys: [Self.old]))
        }
    }
}
