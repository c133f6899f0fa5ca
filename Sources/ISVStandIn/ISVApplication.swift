import AsyncHTTPClient
import Foundation
import SwitchboardJSON
import HTTPTypes
public import Hummingbird
public import Logging
import MCPServerKit
import NIOCore

/// Everything `switchboard isv` needs: the offline third-party app (a GitHub REST subset and
/// an MCP endpoint) that accepts only tokens the IdP's OAuth STS brokered for it.
public struct ISVOptions: Sendable {
    public var host: String = "127.0.0.1"
    /// 0 = a free port.
    public var port: Int = 7000
    public var dataDirectory: String = ".switchboard"
    /// The identity provider that brokers tokens (its `/apps/{id}` issuers sign them).
    public var identityProvider: String = "http://127.0.0.1:9000"
    /// The STS app ids of the REST API and of the MCP endpoint at the IdP.
    public var restApp: String = "github"
    public var mcpApp: String = "github-mcp"
    /// The `aud` of REST tokens (default `http://{host}:{port}`); MCP tokens carry `{that}/mcp`.
    public var audience: String?
    public var logger: Logger = Logger(label: "switchboard.isv")
    public var onServerRunning: (@Sendable (Int) async -> Void)?

    public init() {}
}

public func buildISVApplication(_ options: ISVOptions) async throws -> some ApplicationProtocol {
    try FileManager.default.createDirectory(atPath: options.dataDirectory, withIntermediateDirectories: true)
    let store = try CommentStore(path: options.dataDirectory + "/isv.sqlite")
    // The process-wide client: it needs no shutdown when the app stops.
    let httpClient = HTTPClient.shared
    let base = options.audience ?? "http://\(options.host):\(options.port)"
    let idp = options.identityProvider.hasSuffix("/") ? String(options.identityProvider.dropLast()) : options.identityProvider
    let restGuard = AccessTokenGuard(issuer: idp + "/apps/" + options.restApp, resource: base, resourceMetadataURL: base + "/.well-known/oauth-protected-resource", httpClient: httpClient)
    let mcpGuard = AccessTokenGuard(issuer: idp + "/apps/" + options.mcpApp, resource: base + "/mcp", resourceMetadataURL: base + "/.well-known/oauth-protected-resource/mcp", httpClient: httpClient)

    let router = Router(context: BasicRequestContext.self)
    router.add(middleware: TracingMiddleware())  // continues the caller's trace (a no-op without a tracer)
    MCPEndpoint(tools: GitHubTools(store: store, base: base), guardian: mcpGuard, sessions: MCPSessions(),
                allowedOrigins: ["http://127.0.0.1:*", "http://localhost:*"], alwaysSSE: false, logger: options.logger, connectScope: nil).register(on: router)
    GitHubREST(store: store, guardian: restGuard, base: base).register(on: router)
    router.get("/healthz") { _, _ in Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}"))) }
    let logger = options.logger
    let onRunning = options.onServerRunning
    return Application(
        router: router, configuration: .init(address: .hostname(options.host, port: options.port), serverName: "isv"),
        onServerRunning: { channel in
            logger.info("ISV stand-in listening", metadata: ["address": "\(channel.localAddress?.description ?? "")"])
            await onRunning?(channel.localAddress?.port ?? options.port)
        }, logger: logger)
}

/// The GitHub REST subset: `GET /user`, `GET /user/repos`, and pull-request comments.
struct GitHubREST: Sendable {
    let store: CommentStore
    let guardian: AccessTokenGuard
    let base: String

    func register(on router: Router<BasicRequestContext>) {
        router.get("/user") { request, _ in
            await authorized(request) { login in reply(["login": .string(login), "id": .number(Double(abs(login.hashValue % 100_000))), "type": "User"]) }
        }
        router.get("/user/repos") { request, _ in
            await authorized(request) { login in
                reply(.array(["app", "api"].map { ["name": .string($0), "full_name": .string("acme/\($0)"), "owner": ["login": "acme"],
                                                   "html_url": .string("\(base)/acme/\($0)"), "private": false] }))
            }
        }
        router.post("/repos/:owner/:repo/issues/:number/comments") { request, context in
            await authorized(request) { login in
                guard let owner = context.parameters.get("owner"), let repo = context.parameters.get("repo"),
                      let number = context.parameters.get("number").flatMap({ Int64($0) }), number > 0 else { return problem(.notFound, "Not Found") }
                let buffer = try await request.body.collect(upTo: 256 * 1024)
                guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(buffer.readableBytesView)),
                      let body = value["body"]?.string?.trimmingCharacters(in: .whitespacesAndNewlines), !body.isEmpty
                else { return problem(.unprocessableContent, "Validation Failed: body is required") }
                let comment = try await store.add(owner: owner, repo: repo, number: number, body: body, author: login)
                return reply(CommentStore.json(comment, base: base), status: .created)
            }
        }
        router.get("/repos/:owner/:repo/issues/:number/comments") { request, context in
            await authorized(request) { _ in
                guard let owner = context.parameters.get("owner"), let repo = context.parameters.get("repo"),
                      let number = context.parameters.get("number").flatMap({ Int64($0) }) else { return problem(.notFound, "Not Found") }
                return reply(.array(try await store.list(owner: owner, repo: repo, number: number).map { CommentStore.json($0, base: base) }))
            }
        }
    }

    func authorized(_ request: Request, _ body: (String) async throws -> Response) async -> Response {
        switch await guardian.authenticate(request.headers[.authorization]) {
        case .failure(let failure):
            var r = problem(.unauthorized, "Bad credentials")
            r.headers[.wwwAuthenticate] = guardian.challenge(failure)
            return r
        case .success(let principal):
            do { return try await body(principal.owner) } catch { return problem(.internalServerError, "Server Error") }
        }
    }

    func reply(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: value.encoded())))
    }

    func problem(_ status: HTTPResponse.Status, _ message: String) -> Response {
        reply(["message": .string(message), "documentation_url": "https://docs.github.com/rest"], status: status)
    }
}
