import Foundation
import GRDB

/// The IdP's durable state in SQLite (WAL): signing keys, agents' registered keys, consents,
/// single-use codes, sessions, interactions and replay caches. Secrets that authenticate
/// (codes, session ids) are stored only as SHA-256 hashes.
final class IdPStore: Sendable {
    let db: DatabasePool

    init(path: String) throws {
        // Private keys live here: create the file owner-only before SQLite opens it (its
        // -wal and -shm files take the same mode).
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        var config = Configuration()
        config.busyMode = .timeout(5)
        db = try DatabasePool(path: path, configuration: config)
        try migrator.migrate(db)
    }

    private var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE signing_key (kid TEXT PRIMARY KEY, owner TEXT NOT NULL, pem TEXT NOT NULL, created_at REAL NOT NULL, retired_at REAL);
                CREATE INDEX signing_key_owner ON signing_key(owner);
                CREATE TABLE agent_key (client_id TEXT NOT NULL, kid TEXT NOT NULL, jwk TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (client_id, kid));
                CREATE TABLE consent (user_id TEXT NOT NULL, resource TEXT NOT NULL, agent_id TEXT NOT NULL, granted_at REAL NOT NULL, PRIMARY KEY (user_id, resource, agent_id));
                CREATE TABLE used_jti (scope TEXT NOT NULL, jti TEXT NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (scope, jti));
                CREATE TABLE auth_code (code_hash TEXT PRIMARY KEY, client_id TEXT NOT NULL, redirect_uri TEXT NOT NULL, user_id TEXT NOT NULL,
                    code_challenge TEXT NOT NULL, nonce TEXT, scope TEXT NOT NULL, auth_time REAL NOT NULL, expires_at REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0);
                CREATE TABLE session (id_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, auth_time REAL NOT NULL, expires_at REAL NOT NULL);
                CREATE TABLE interaction (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, resource TEXT NOT NULL, agent_id TEXT NOT NULL, expires_at REAL NOT NULL);
                CREATE TABLE revoked_token (jti TEXT PRIMARY KEY, expires_at REAL NOT NULL);
                """)
        }
        m.registerMigration("v2: management objects") { db in
            // What the Okta-compatible Management API created: one row per object, its Okta JSON
            // as the API answers it (children name their parent). The directory is derived from them.
            try db.execute(sql: """
                CREATE TABLE management_object (kind TEXT NOT NULL, id TEXT NOT NULL, parent TEXT, json TEXT NOT NULL, seq INTEGER NOT NULL,
                    PRIMARY KEY (kind, id));
                """)
        }
        return m
    }

    // MARK: management objects

    struct ManagementRow: Sendable {
        var kind: String
        var id: String
        var parent: String?
        var json: String
        var seq: Int
    }

    func managementObjects() throws -> [ManagementRow] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT kind, id, parent, json, seq FROM management_object ORDER BY seq").map {
                ManagementRow(kind: $0["kind"], id: $0["id"], parent: $0["parent"], json: $0["json"], seq: $0["seq"])
            }
        }
    }

    func saveManagementObject(_ row: ManagementRow) throws {
        try db.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO management_object (kind, id, parent, json, seq) VALUES (?, ?, ?, ?, ?)",
                           arguments: [row.kind, row.id, row.parent, row.json, row.seq])
        }
    }

    func deleteManagementObjects(_ keys: [(kind: String, id: String)]) throws {
        try db.write { db in
            for key in keys { try db.execute(sql: "DELETE FROM management_object WHERE kind = ? AND id = ?", arguments: [key.kind, key.id]) }
        }
    }

    // MARK: signing keys

    struct StoredKey: Sendable {
        var kid: String
        var pem: String
        var createdAt: Date
        var retiredAt: Date?
    }

    func signingKeys(owner: String) throws -> [StoredKey] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT kid, pem, created_at, retired_at FROM signing_key WHERE owner = ? ORDER BY created_at", arguments: [owner]).map {
                StoredKey(kid: $0["kid"], pem: $0["pem"], createdAt: Date(timeIntervalSince1970: $0["created_at"]),
                          retiredAt: ($0["retired_at"] as Double?).map { Date(timeIntervalSince1970: $0) })
            }
        }
    }

    func addSigningKey(owner: String, kid: String, pem: String, retiringOthersAt: Date?) throws {
        try db.write { db in
            if let at = retiringOthersAt {
                try db.execute(sql: "UPDATE signing_key SET retired_at = ? WHERE owner = ? AND retired_at IS NULL", arguments: [at.timeIntervalSince1970, owner])
            }
            try db.execute(sql: "INSERT INTO signing_key (kid, owner, pem, created_at) VALUES (?, ?, ?, ?)", arguments: [kid, owner, pem, Date().timeIntervalSince1970])
        }
    }

    // MARK: agents

    func agentJWKs(clientID: String) throws -> [String] {
        try db.read { db in try String.fetchAll(db, sql: "SELECT jwk FROM agent_key WHERE client_id = ? ORDER BY created_at", arguments: [clientID]) }
    }

    func registerAgentKey(clientID: String, kid: String, jwk: String) throws {
        try db.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO agent_key (client_id, kid, jwk, created_at) VALUES (?, ?, ?, ?)",
                           arguments: [clientID, kid, jwk, Date().timeIntervalSince1970])
        }
    }

    // MARK: consents

    /// Consent is per user, app and agent: approving one agent does not let another act.
    func hasConsent(userID: String, resource: String, agentID: String) throws -> Bool {
        try db.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM consent WHERE user_id = ? AND resource = ? AND agent_id = ?", arguments: [userID, resource, agentID]) ?? false
        }
    }

    func grantConsent(userID: String, resource: String, agentID: String) throws {
        try db.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO consent (user_id, resource, agent_id, granted_at) VALUES (?, ?, ?, ?)",
                           arguments: [userID, resource, agentID, Date().timeIntervalSince1970])
        }
    }

    func revokeConsent(userID: String, resource: String, agentID: String) throws {
        try db.write { db in
            try db.execute(sql: "DELETE FROM consent WHERE user_id = ? AND resource = ? AND agent_id = ?", arguments: [userID, resource, agentID])
        }
    }

    // MARK: replay caches

    /// Records `jti` under `scope` until `expiresAt`; false if it was already used.
    func useOnce(scope: String, jti: String, expiresAt: Date, now: Date) throws -> Bool {
        try db.write { db in
            try db.execute(sql: "DELETE FROM used_jti WHERE expires_at < ?", arguments: [now.timeIntervalSince1970])
            try db.execute(sql: "INSERT OR IGNORE INTO used_jti (scope, jti, expires_at) VALUES (?, ?, ?)", arguments: [scope, jti, expiresAt.timeIntervalSince1970])
            return db.changesCount == 1
        }
    }

    func revoke(jti: String, expiresAt: Date) throws {
        try db.write { db in try db.execute(sql: "INSERT OR REPLACE INTO revoked_token (jti, expires_at) VALUES (?, ?)", arguments: [jti, expiresAt.timeIntervalSince1970]) }
    }

    func isRevoked(jti: String) throws -> Bool {
        try db.read { db in try Bool.fetchOne(db, sql: "SELECT 1 FROM revoked_token WHERE jti = ?", arguments: [jti]) ?? false }
    }

    // MARK: authorization codes

    struct CodeRecord: Sendable {
        var clientID: String
        var redirectURI: String
        var userID: String
        var codeChallenge: String
        var nonce: String?
        var scope: String
        var authTime: Date
        var expiresAt: Date
    }

    func saveCode(_ code: String, _ r: CodeRecord) throws {
        try db.write { db in
            try db.execute(sql: """
                INSERT INTO auth_code (code_hash, client_id, redirect_uri, user_id, code_challenge, nonce, scope, auth_time, expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [Self.hash(code), r.clientID, r.redirectURI, r.userID, r.codeChallenge, r.nonce, r.scope,
                                 r.authTime.timeIntervalSince1970, r.expiresAt.timeIntervalSince1970])
        }
    }

    enum CodeLookup: Sendable {
        case valid(CodeRecord)
        case replayed
        case unknown
    }

    /// Marks the code used and returns it; a second use answers `.replayed`.
    func consumeCode(_ code: String) throws -> CodeLookup {
        try db.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM auth_code WHERE code_hash = ?", arguments: [Self.hash(code)]) else { return .unknown }
            if (row["used"] as Int) != 0 { return .replayed }
            try db.execute(sql: "UPDATE auth_code SET used = 1 WHERE code_hash = ?", arguments: [Self.hash(code)])
            return .valid(CodeRecord(
                clientID: row["client_id"], redirectURI: row["redirect_uri"], userID: row["user_id"], codeChallenge: row["code_challenge"],
                nonce: row["nonce"], scope: row["scope"], authTime: Date(timeIntervalSince1970: row["auth_time"]),
                expiresAt: Date(timeIntervalSince1970: row["expires_at"])))
        }
    }

    // MARK: sessions

    func createSession(_ id: String, userID: String, authTime: Date, expiresAt: Date) throws {
        try db.write { db in
            try db.execute(sql: "INSERT INTO session (id_hash, user_id, auth_time, expires_at) VALUES (?, ?, ?, ?)",
                           arguments: [Self.hash(id), userID, authTime.timeIntervalSince1970, expiresAt.timeIntervalSince1970])
        }
    }

    func session(_ id: String, now: Date) throws -> (userID: String, authTime: Date)? {
        try db.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT user_id, auth_time FROM session WHERE id_hash = ? AND expires_at > ?",
                                             arguments: [Self.hash(id), now.timeIntervalSince1970]) else { return nil }
            return (row["user_id"], Date(timeIntervalSince1970: row["auth_time"]))
        }
    }

    func deleteSession(_ id: String) throws {
        try db.write { db in try db.execute(sql: "DELETE FROM session WHERE id_hash = ?", arguments: [Self.hash(id)]) }
    }

    // MARK: interactions (consent requests)

    func createInteraction(_ id: String, userID: String, resource: String, agentID: String, expiresAt: Date) throws {
        try db.write { db in
            try db.execute(sql: "INSERT INTO interaction (id, user_id, resource, agent_id, expires_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [id, userID, resource, agentID, expiresAt.timeIntervalSince1970])
        }
    }

    func interaction(_ id: String, now: Date) throws -> (userID: String, resource: String, agentID: String)? {
        try db.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT user_id, resource, agent_id FROM interaction WHERE id = ? AND expires_at > ?",
                                             arguments: [id, now.timeIntervalSince1970]) else { return nil }
            return (row["user_id"], row["resource"], row["agent_id"])
        }
    }

    func deleteInteraction(_ id: String) throws {
        try db.write { db in try db.execute(sql: "DELETE FROM interaction WHERE id = ?", arguments: [id]) }
    }

    static func hash(_ s: String) -> String {
        SHA256Hex.of(s)
    }
}
