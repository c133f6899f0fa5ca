import Foundation
import SwitchboardJSON
import MCPServerKit
import HTTPTypes
import Hummingbird
import NIOCore

/// The REST face of todo0 (`:5001`): `GET/POST /api/todos`, `PATCH/DELETE /api/todos/{id}`,
/// with the same access tokens and scopes as the MCP endpoint.
struct RESTEndpoint: Sendable {
    let store: TodoStore
    let guardian: AccessTokenGuard

    func register(on router: Router<BasicRequestContext>) {
        router.get("/api/todos") { request, _ in
            await with(request, scope: TodoTools.readScope) { owner in
                json(.object(["todos": .array(try await store.list(owner: owner).map(TodoTools.json))]))
            }
        }
        router.post("/api/todos") { request, _ in
            await with(request, scope: TodoTools.manageScope) { owner in
                let body = try await Self.body(request)
                guard let title = body["title"]?.string?.trimmingCharacters(in: .whitespacesAndNewlines), !title.isEmpty else {
                    return Self.error(.badRequest, "invalid_request", "send {\"title\": \"…\"} with a non-empty title")
                }
                guard title.count <= TodoStore.maxTitleLength else {
                    return Self.error(.badRequest, "invalid_request", "the title is longer than \(TodoStore.maxTitleLength) characters")
                }
                return json(TodoTools.json(try await store.create(owner: owner, title: title)), status: .created)
            }
        }
        router.patch("/api/todos/:id") { request, context in
            await with(request, scope: TodoTools.manageScope) { owner in
                guard let id = context.parameters.get("id").flatMap({ Int64($0) }) else { return Self.error(.notFound, "not_found", "no such todo") }
                let body = try await Self.body(request)
                // Validate the whole body before writing anything.
                if body["title"] == nil, body["done"] == nil { return Self.error(.badRequest, "invalid_request", "send 'title' and/or 'done'") }
                if let done = body["done"], case .bool = done {} else if body["done"] != nil {
                    return Self.error(.badRequest, "invalid_request", "'done' must be true or false")
                }
                if let raw = body["title"] {
                    guard let t = raw.string?.trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty, t.count <= TodoStore.maxTitleLength else {
                        return Self.error(.badRequest, "invalid_request", "the title must be a string of 1-\(TodoStore.maxTitleLength) characters")
                    }
                }
                var todo: Todo?
                if let title = body["title"]?.string {
                    let t = title.trimmingCharacters(in: .whitespacesAndNewlines)
                    guard !t.isEmpty, t.count <= TodoStore.maxTitleLength else { return Self.error(.badRequest, "invalid_request", "the title must be 1-\(TodoStore.maxTitleLength) characters") }
                    todo = try await store.rename(owner: owner, id: id, title: t)
                    if todo == nil { return Self.error(.notFound, "not_found", "no such todo") }
                }
                if case .bool(let done)? = body["done"] {
                    todo = try await store.toggle(owner: owner, id: id, done: done)
                }
                guard let todo else { return Self.error(.notFound, "not_found", "no such todo") }
                return json(TodoTools.json(todo))
            }
        }
        router.delete("/api/todos/:id") { request, context in
            await with(request, scope: TodoTools.manageScope) { owner in
                guard let id = context.parameters.get("id").flatMap({ Int64($0) }), try await store.delete(owner: owner, id: id) != nil else {
                    return Self.error(.notFound, "not_found", "no such todo")
                }
                return Response(status: .noContent)
            }
        }
    }

    func with(_ request: Request, scope: String, _ body: (String) async throws -> Response) async -> Response {
        switch await guardian.authenticate(request.headers[.authorization]) {
        case .failure(let failure):
            var r = Self.error(.unauthorized, "invalid_token", "a valid access token is required")
            r.headers[.wwwAuthenticate] = guardian.challenge(failure)
            return r
        case .success(let principal):
            let needed: Set<String> = [TodoTools.connectScope, scope]
            guard needed.isSubset(of: principal.scopes) else {
                var r = Self.error(.forbidden, "insufficient_scope", "the access token lacks \(needed.subtracting(principal.scopes).sorted().joined(separator: " "))")
                r.headers[.wwwAuthenticate] = guardian.insufficientScope(needed: needed, held: principal.scopes)
                return r
            }
            do { return try await body(principal.owner) } catch let e as RESTBodyError {
                return Self.error(.badRequest, "invalid_request", e.message)
            } catch {
                return Self.error(.internalServerError, "server_error", "the request failed; try again")
            }
        }
    }

    struct RESTBodyError: Error { var message: String }

    static func body(_ request: Request) async throws -> [String: JSONValue] {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: 64 * 1024) } catch { throw RESTBodyError(message: "the body exceeds 64 KiB") }
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: buffer)), let object = value.object else {
            throw RESTBodyError(message: "the body must be a JSON object")
        }
        return object
    }

    static func error(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> Response {
        json(["error": .string(code), "message": .string(message)], status: status)
    }
}

func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: value.encoded())))
}
