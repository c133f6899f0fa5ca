import Foundation
package import SwitchboardJSON
import HTTPTypes
package import Hummingbird
package import Logging
import NIOCore
import ServiceLifecycle

/// MCP Streamable HTTP at `/mcp`: revisions 2025-06-18 and 2025-11-25 (initialize handshake,
/// sessions) and 2026-07-28 (stateless requests with a `_meta` envelope, `server/discover`).
///
/// Order of checks for every request: Origin → access token (401) → `mcp:connect` (403) →
/// protocol version and session → JSON-RPC → per-tool scope (403 `insufficient_scope`).
package struct MCPEndpoint: Sendable {
    let tools: any MCPToolbox
    let guardian: AccessTokenGuard
    let sessions: MCPSessions
    let allowedOrigins: [String]
    let alwaysSSE: Bool
    let logger: Logger
    /// Scope every request needs (todo0: `mcp:connect`); nil when the server has none.
    let connectScope: String?

    package init(tools: any MCPToolbox, guardian: AccessTokenGuard, sessions: MCPSessions, allowedOrigins: [String], alwaysSSE: Bool, logger: Logger, connectScope: String?) {
        self.tools = tools
        self.guardian = guardian
        self.sessions = sessions
        self.allowedOrigins = allowedOrigins
        self.alwaysSSE = alwaysSSE
        self.logger = logger
        self.connectScope = connectScope
    }

    static let handshakeVersions = ["2025-11-25", "2025-06-18"]
    static let statelessVersion = "2026-07-28"
    static let metaVersion = "io.modelcontextprotocol/protocolVersion"
    static let metaCapabilities = "io.modelcontextprotocol/clientCapabilities"

    package func register(on router: Router<BasicRequestContext>) {
        router.post("/mcp") { request, _ in await post(request) }
        router.get("/mcp") { request, _ in await get(request) }
        router.delete("/mcp") { request, _ in await delete(request) }
    }

    // MARK: common checks

    /// Origin must be one of the allowed ones when present (DNS-rebinding defence).
    func originAllowed(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin] else { return true }
        return allowedOrigins.contains { pattern in
            guard pattern.hasSuffix(":*") else { return origin == pattern }
            let base = String(pattern.dropLast(2))
            if origin == base { return true }
            // `:*` means "any port": only digits may follow the colon.
            guard origin.hasPrefix(base + ":") else { return false }
            let port = origin.dropFirst(base.count + 1)
            return !port.isEmpty && port.count <= 5 && port.allSatisfy(\.isASCII) && port.allSatisfy(\.isNumber)
        }
    }

    func authorize(_ request: Request) async -> AuthOutcome {
        guard originAllowed(request) else { return .refused(Self.httpError(.forbidden, "origin_not_allowed", "this Origin may not call the MCP endpoint")) }
        switch await guardian.authenticate(request.headers[.authorization]) {
        case .failure(let failure):
            var r = Self.httpError(.unauthorized, "invalid_token", "a valid access token for this MCP server is required")
            r.headers[.wwwAuthenticate] = guardian.challenge(failure)
            return .refused(r)
        case .success(let principal):
            if let connectScope, !principal.scopes.contains(connectScope) { return .refused(insufficient([connectScope], principal)) }
            return .ok(principal)
        }
    }

    func insufficient(_ needed: Set<String>, _ principal: Principal) -> Response {
        var r = Self.httpError(.forbidden, "insufficient_scope", "the access token lacks \(needed.subtracting(principal.scopes).sorted().joined(separator: " "))")
        r.headers[.wwwAuthenticate] = guardian.insufficientScope(needed: needed, held: principal.scopes)
        return r
    }

    static func httpError(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> Response {
        let body: JSONValue = ["error": .string(code), "error_description": .string(message)]
        return Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: body.encoded())))
    }

    static func rpcError(_ status: HTTPResponse.Status, id: JSONValue, code: Int, _ message: String) -> Response {
        let body: JSONValue = ["jsonrpc": "2.0", "id": id, "error": ["code": .number(Double(code)), "message": .string(message)]]
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body.encoded())))
    }

    func isStateless(_ request: Request, message: JSONValue?) -> Bool {
        if request.headers[.mcpProtocolVersion] == Self.statelessVersion { return true }
        return message?["params"]?["_meta"]?[Self.metaVersion]?.string == Self.statelessVersion
    }

    // MARK: POST

    func post(_ request: Request) async -> Response {
        let principal: Principal
        switch await authorize(request) {
        case .refused(let r): return r
        case .ok(let p): principal = p
        }
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            return Self.httpError(.unsupportedMediaType, "unsupported_media_type", "send JSON-RPC as application/json")
        }
        let accept = request.headers[.accept]?.lowercased() ?? "*/*"
        guard accept.contains("application/json") || accept.contains("text/event-stream") || accept.contains("*/*") else {
            return Self.httpError(.notAcceptable, "not_acceptable", "Accept must include application/json and text/event-stream")
        }
        let message: JSONValue
        do {
            let body = try await request.body.collect(upTo: 1 << 20)
            message = try JSONDecoder().decode(JSONValue.self, from: Data(buffer: body))
        } catch {
            return Self.rpcError(.badRequest, id: .null, code: -32700, "parse error: the body is not JSON (or exceeds 1 MiB)")
        }
        guard case .object(let fields) = message, fields["jsonrpc"] == "2.0" else {
            if case .array = message { return Self.rpcError(.badRequest, id: .null, code: -32600, "JSON-RPC batches are not supported") }
            return Self.rpcError(.badRequest, id: .null, code: -32600, "not a JSON-RPC 2.0 message")
        }
        let id = fields["id"] ?? .null
        guard let method = fields["method"]?.string else {
            return Response(status: .accepted)  // a response to a server request: nothing to do
        }
        let isNotification = fields["id"] == nil
        let params = fields["params"]?.object ?? [:]

        if isStateless(request, message: message) {
            if let header = request.headers[.mcpMethod], header != method {
                return Self.rpcError(.badRequest, id: id, code: -32600, "Mcp-Method header '\(header)' does not match the body's method '\(method)'")
            }
            if isNotification { return Response(status: .accepted) }
            let meta = params["_meta"]?.object ?? [:]
            guard meta[Self.metaVersion]?.string == Self.statelessVersion, meta[Self.metaCapabilities] != nil else {
                return Self.rpcError(.badRequest, id: id, code: -32602,
                                     "params._meta must carry \(Self.metaVersion) = \(Self.statelessVersion) and \(Self.metaCapabilities)")
            }
            return await dispatch(method: method, id: id, params: params, principal: principal, protocolVersion: Self.statelessVersion, request: request, sessionID: nil)
        }

        // Handshake revisions.
        if method == "initialize" {
            guard !isNotification else { return Response(status: .accepted) }
            let asked = params["protocolVersion"]?.string ?? ""
            let version = Self.handshakeVersions.contains(asked) ? asked : Self.handshakeVersions[0]
            let session = sessions.create(owner: principal.owner, protocolVersion: version)
            let result: JSONValue = ["protocolVersion": .string(version), "capabilities": ["tools": ["listChanged": false]], "serverInfo": tools.serverInfo,
                                     "instructions": .string(tools.instructions)]
            var response = reply(id: id, result: result, request: request, forceSSE: false)
            response.headers[.mcpSessionID] = session
            logger.info("mcp session started", metadata: ["version": "\(version)"])
            return response
        }
        guard let sessionID = request.headers[.mcpSessionID] else {
            return Self.rpcError(.badRequest, id: id, code: -32600, "missing Mcp-Session-Id: call initialize first")
        }
        guard let session = sessions.touch(sessionID, owner: principal.owner) else {
            return Self.rpcError(.notFound, id: id, code: -32001, "unknown or ended session: initialize again")
        }
        if let version = request.headers[.mcpProtocolVersion], version != session.protocolVersion {
            return Self.rpcError(.badRequest, id: id, code: -32600, "MCP-Protocol-Version '\(version)' is not the negotiated '\(session.protocolVersion)'")
        }
        if isNotification { return Response(status: .accepted, headers: [.mcpSessionID: sessionID]) }
        var response = await dispatch(method: method, id: id, params: params, principal: principal, protocolVersion: session.protocolVersion, request: request, sessionID: sessionID)
        response.headers[.mcpSessionID] = sessionID
        return response
    }

    func dispatch(method: String, id: JSONValue, params: [String: JSONValue], principal: Principal, protocolVersion: String, request: Request, sessionID: String?) async -> Response {
        let stateless = protocolVersion == Self.statelessVersion
        func finish(_ result: JSONValue, forceSSE: Bool = false) -> Response {
            guard stateless, case .object(var o) = result else { return reply(id: id, result: result, request: request, forceSSE: forceSSE) }
            o["resultType"] = "complete"
            return reply(id: id, result: .object(o), request: request, forceSSE: forceSSE)
        }
        switch method {
        case "ping":
            return finish([:])
        case "server/discover" where stateless:
            // 2026-07-28 cacheable results say how long and for whom (per user: private).
            return finish(["supportedVersions": [.string(Self.statelessVersion)], "capabilities": ["tools": ["listChanged": false]],
                           "cacheScope": "private", "ttlMs": 0, "_meta": ["io.modelcontextprotocol/serverInfo": tools.serverInfo]])
        case "tools/list":
            return finish(stateless ? ["tools": tools.listing, "cacheScope": "private", "ttlMs": 0] : ["tools": tools.listing])
        case "tools/call":
            guard let name = params["name"]?.string, let toolScopes = tools.requiredScopes(for: name) else {
                return Self.rpcError(.ok, id: id, code: -32602, "unknown tool '\(params["name"]?.string ?? "")'; see tools/list")
            }
            var needed = toolScopes
            if let connectScope { needed.insert(connectScope) }
            guard needed.isSubset(of: principal.scopes) else { return insufficient(needed, principal) }
            if let header = request.headers[.mcpName], stateless, header != name {
                return Self.rpcError(.badRequest, id: id, code: -32600, "Mcp-Name header '\(header)' does not match the tool '\(name)'")
            }
            let arguments = params["arguments"]?.object ?? [:]
            do {
                let result = try await tools.call(name, arguments: arguments, owner: principal.owner)
                logger.info("tool call", metadata: ["tool": "\(name)", "error": "\(result["isError"] == true)"])
                let progressToken = params["_meta"]?["progressToken"]
                if let progressToken, acceptsSSE(request) {
                    return sse(id: id, result: stateless ? withResultType(result) : result, progress: progressToken)
                }
                return finish(result)
            } catch {
                logger.error("tool failed", metadata: ["tool": "\(name)", "error": "\(error)"])
                return Self.rpcError(.ok, id: id, code: -32603, "the tool failed; try again")
            }
        default:
            return Self.rpcError(.ok, id: id, code: -32601, "method '\(method)' is not supported by todo0")
        }
    }

    func withResultType(_ result: JSONValue) -> JSONValue {
        guard case .object(var o) = result else { return result }
        o["resultType"] = "complete"
        return .object(o)
    }

    func acceptsSSE(_ request: Request) -> Bool {
        request.headers[.accept]?.lowercased().contains("text/event-stream") ?? false
    }

    /// JSON, or SSE when the server is configured to stream every answer.
    func reply(id: JSONValue, result: JSONValue, request: Request, forceSSE: Bool) -> Response {
        if alwaysSSE || forceSSE, acceptsSSE(request) { return sse(id: id, result: result, progress: nil) }
        let body: JSONValue = ["jsonrpc": "2.0", "id": id, "result": result]
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body.encoded())))
    }

    /// An SSE answer: a progress notification first (when the caller asked for progress),
    /// then the response event, then the stream ends.
    func sse(id: JSONValue, result: JSONValue, progress: JSONValue?) -> Response {
        var events: [ByteBuffer] = []
        if let progress {
            let note: JSONValue = ["jsonrpc": "2.0", "method": "notifications/progress", "params": ["progressToken": progress, "progress": 1, "total": 1, "message": "done"]]
            events.append(ByteBuffer(string: "event: message\ndata: " + String(decoding: note.encoded(), as: UTF8.self) + "\n\n"))
        }
        let body: JSONValue = ["jsonrpc": "2.0", "id": id, "result": result]
        events.append(ByteBuffer(string: "event: message\ndata: " + String(decoding: body.encoded(), as: UTF8.self) + "\n\n"))
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: .init(contentsOf: events))
    }

    // MARK: GET and DELETE

    func get(_ request: Request) async -> Response {
        let principal: Principal
        switch await authorize(request) {
        case .refused(let r): return r
        case .ok(let p): principal = p
        }
        if isStateless(request, message: nil) {
            return Response(status: .methodNotAllowed, headers: [.allow: "POST"])
        }
        guard acceptsSSE(request) else { return Self.httpError(.notAcceptable, "not_acceptable", "GET needs Accept: text/event-stream") }
        guard let sessionID = request.headers[.mcpSessionID] else { return Self.httpError(.badRequest, "missing_session", "missing Mcp-Session-Id") }
        guard sessions.touch(sessionID, owner: principal.owner) != nil else { return Self.httpError(.notFound, "unknown_session", "unknown or ended session") }
        let sessions = self.sessions
        // A server-to-client stream: todo0 sends nothing unprompted, so it carries keep-alive
        // comments until the session ends, the client leaves or the server shuts down (a
        // graceful shutdown must not wait for a stream that never ends by itself).
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", .mcpSessionID: sessionID], body: ResponseBody { writer in
            try await writer.write(ByteBuffer(string: ": stream open\n\n"))
            var ticks = 0
            while sessions.exists(sessionID), !Task.isShuttingDownGracefully {
                try await Task.sleep(for: .milliseconds(250))
                ticks += 1
                if ticks % 60 == 0 { try await writer.write(ByteBuffer(string: ": keep-alive\n\n")) }
            }
            try await writer.finish(nil)
        })
    }

    func delete(_ request: Request) async -> Response {
        let principal: Principal
        switch await authorize(request) {
        case .refused(let r): return r
        case .ok(let p): principal = p
        }
        if isStateless(request, message: nil) { return Response(status: .methodNotAllowed, headers: [.allow: "POST"]) }
        guard let sessionID = request.headers[.mcpSessionID] else { return Self.httpError(.badRequest, "missing_session", "missing Mcp-Session-Id") }
        guard sessions.end(sessionID, owner: principal.owner) else { return Self.httpError(.notFound, "unknown_session", "unknown or ended session") }
        return Response(status: .ok)
    }
}

extension HTTPField.Name {
    static let mcpSessionID = HTTPField.Name("Mcp-Session-Id")!
    static let mcpProtocolVersion = HTTPField.Name("MCP-Protocol-Version")!
    static let mcpMethod = HTTPField.Name("Mcp-Method")!
    static let mcpName = HTTPField.Name("Mcp-Name")!
}

/// The tools an MCP server built on ``MCPEndpoint`` offers.
package protocol MCPToolbox: Sendable {
    /// `serverInfo` of `initialize` / `server/discover`.
    var serverInfo: JSONValue { get }
    var instructions: String { get }
    /// The `tools/list` array.
    var listing: JSONValue { get }
    /// Scopes a tool needs (besides the connect scope); nil for an unknown tool.
    func requiredScopes(for tool: String) -> Set<String>?
    /// Runs a tool for `owner`; bad input is a tool error result, not a throw.
    func call(_ name: String, arguments: [String: JSONValue], owner: String) async throws -> JSONValue
}

/// The outcome of the common checks: a caller, or the response that refuses them.
enum AuthOutcome: Sendable {
    case ok(Principal)
    case refused(Response)
}
