import Foundation
import MCPServerKit
import GRDB
import Tracing

/// A todo as stored and returned.
struct Todo: Sendable, Equatable, Codable {
    var id: Int64
    var title: String
    var done: Bool
    var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id, title, done
        case createdAt = "created_at"
    }
}

/// Per-user todos in SQLite (WAL). Every write is one transaction committed before the
/// answer goes out, so an acknowledged write survives `kill -9`; concurrent writers are
/// serialised by SQLite and never lose updates. Another user's todo is indistinguishable
/// from a missing one: every query is scoped to its owner.
final class TodoStore: Sendable {
    private let db: DatabasePool
    static let maxTitleLength = 500

    init(path: String) throws {
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            // WAL + NORMAL: a committed transaction survives a process crash (kill -9); only an
            // OS crash or power loss could drop the last ones.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        db = try DatabasePool(path: path, configuration: config)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE todo (id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, title TEXT NOT NULL,
                                   done INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);
                CREATE INDEX todo_owner ON todo(owner, id);
                """)
        }
        try migrator.migrate(db)
    }

    /// One database operation as a client span (OpenTelemetry's database conventions), the
    /// last link of a traced tool call; a no-op without a tracer.
    private func traced<T>(_ operation: String, _ body: () async throws -> T) async rethrows -> T {
        try await withSpan("\(operation) todo", ofKind: .client) { span in
            span.attributes["db.system.name"] = "sqlite"
            span.attributes["db.operation.name"] = operation
            span.attributes["db.collection.name"] = "todo"
            return try await body()
        }
    }

    private static func todo(_ row: Row) -> Todo {
        Todo(id: row["id"], title: row["title"], done: row["done"], createdAt: Date(timeIntervalSince1970: row["created_at"]))
    }

    func list(owner: String) async throws -> [Todo] {
        try await traced("SELECT") {
            try await db.read { db in
                try Row.fetchAll(db, sql: "SELECT id, title, done, created_at FROM todo WHERE owner = ? ORDER BY id", arguments: [owner]).map(Self.todo)
            }
        }
    }

    func create(owner: String, title: String) async throws -> Todo {
        try await traced("INSERT") {
            try await db.write { db in
                let now = Date().timeIntervalSince1970
                try db.execute(sql: "INSERT INTO todo (owner, title, done, created_at) VALUES (?, ?, 0, ?)", arguments: [owner, title, now])
                return Todo(id: db.lastInsertedRowID, title: title, done: false, createdAt: Date(timeIntervalSince1970: now))
            }
        }
    }

    /// Flips `done` (or sets it); nil when the owner has no such todo.
    func toggle(owner: String, id: Int64, done: Bool? = nil) async throws -> Todo? {
        try await traced("UPDATE") {
            try await db.write { db in
                if let done {
                    try db.execute(sql: "UPDATE todo SET done = ? WHERE id = ? AND owner = ?", arguments: [done, id, owner])
                } else {
                    try db.execute(sql: "UPDATE todo SET done = 1 - done WHERE id = ? AND owner = ?", arguments: [id, owner])
                }
                guard db.changesCount == 1 else { return nil }
                return try Row.fetchOne(db, sql: "SELECT id, title, done, created_at FROM todo WHERE id = ?", arguments: [id]).map(Self.todo)
            }
        }
    }

    /// Renames a todo; nil when the owner has no such todo.
    func rename(owner: String, id: Int64, title: String) async throws -> Todo? {
        try await traced("UPDATE") {
            try await db.write { db in
                try db.execute(sql: "UPDATE todo SET title = ? WHERE id = ? AND owner = ?", arguments: [title, id, owner])
                guard db.changesCount == 1 else { return nil }
                return try Row.fetchOne(db, sql: "SELECT id, title, done, created_at FROM todo WHERE id = ?", arguments: [id]).map(Self.todo)
            }
        }
    }

    /// Deletes; the deleted todo, or nil when the owner has no such todo.
    func delete(owner: String, id: Int64) async throws -> Todo? {
        try await traced("DELETE") {
            try await db.write { db in
                guard let row = try Row.fetchOne(db, sql: "SELECT id, title, done, created_at FROM todo WHERE id = ? AND owner = ?", arguments: [id, owner]) else {
                    return nil
                }
                try db.execute(sql: "DELETE FROM todo WHERE id = ? AND owner = ?", arguments: [id, owner])
                return Self.todo(row)
            }
        }
    }
}
