import Foundation
import SwitchboardJSON
import GRDB
import MCPServerKit

/// Pull-request comments in SQLite, so tests can read back what the agent posted.
final class CommentStore: Sendable {
    private let db: DatabasePool

    init(path: String) throws {
        db = try DatabasePool(path: path)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE comment (id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, repo TEXT NOT NULL, number INTEGER NOT NULL,
                                      body TEXT NOT NULL, author TEXT NOT NULL, created_at REAL NOT NULL);
                """)
        }
        try migrator.migrate(db)
    }

    struct Comment: Sendable {
        var id: Int64
        var owner: String
        var repo: String
        var number: Int64
        var body: String
        var author: String
        var createdAt: Date
    }

    func add(owner: String, repo: String, number: Int64, body: String, author: String) async throws -> Comment {
        try await db.write { db in
            let now = Date()
            try db.execute(sql: "INSERT INTO comment (owner, repo, number, body, author, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [owner, repo, number, body, author, now.timeIntervalSince1970])
            return Comment(id: db.lastInsertedRowID, owner: owner, repo: repo, number: number, body: body, author: author, createdAt: now)
        }
    }

    func list(owner: String, repo: String, number: Int64) async throws -> [Comment] {
        try await db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM comment WHERE owner = ? AND repo = ? AND number = ? ORDER BY id", arguments: [owner, repo, number]).map {
                Comment(id: $0["id"], owner: $0["owner"], repo: $0["repo"], number: $0["number"], body: $0["body"], author: $0["author"],
                        createdAt: Date(timeIntervalSince1970: $0["created_at"]))
            }
        }
    }

    /// The GitHub REST shape of a comment.
    static func json(_ c: Comment, base: String) -> JSONValue {
        [
            "id": .number(Double(c.id)), "body": .string(c.body), "user": ["login": .string(c.author)],
            "html_url": .string("\(base)/\(c.owner)/\(c.repo)/pull/\(c.number)#issuecomment-\(c.id)"),
            "created_at": .string(c.createdAt.formatted(.iso8601)),
        ]
    }
}
