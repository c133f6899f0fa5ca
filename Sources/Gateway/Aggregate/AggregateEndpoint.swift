import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PluginAPI
import SwitchboardJSON
import Synchronization

/// The gateway's own MCP server (Streamable HTTP): `/mcp` merges every MCP connection the
/// user may reach, `/mcp/v/{name}` a virtual server's subset. Authenticated like every `/mcp`
/// route, with the user's ID token; the revisions todo0 speaks (2025-06-18 and 2025-11-25 with
/// sessions, 2026-07-28 stateless). What each method answers is ``Aggregator``'s.
struct AggregateEndpoint: Sendable {
    let holder: RegistryHolder
    let proxy: ProxyHandler
    let sessions: AggregateSessions
    let logger: Logger

    static let handshakeVersions = ["2025-11-25", "2025-06-18"]
    static let statelessVersion = "2026-07-28"
    static let metaVersion = "io.modelcontextprotocol/protocolVersion"
    static let maxBody = 1 << 20
    static let capabilities: JSONValue = [
        "tools": ["listChanged": true], "prompts": ["listChanged": true], "resources": ["listChanged": true],
    ]

    /// Which of the endpoint's routes a path is; nil for any other path.
    enum Route: Equatable {
        case all
        case virtual(String)

        init?(path: String) {
            let path = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? path
            if path == "/mcp" || path == "/mcp/" { self = .all; return }
            guard path.hasPrefix("/mcp/v/") else { return nil }
            var name = path.dropFirst("/mcp/v/".count)
            if name.hasSuffix("/") { name = name.dropLast() }
            self = .virtual(String(name))
        }

        var virtualName: String? {
            if case .virtual(let name) = self { return name }
            return nil
        }
    }

    init(holder: RegistryHolder, proxy: ProxyHandler, logger: Logger, sessions: AggregateSessions = AggregateSessions()) {
        self.holder = holder
        self.proxy = proxy
        self.sessions = sessions
        self.logger = logger
        let sessions = self.sessions
        holder.onSwap { old, new in Self.registryChanged(from: old, to: new, sessions: sessions) }
    }

    func handle(_ request: Request, route: Route) async -> Response {
        let registry = holder.registry  // the one read: this request keeps this generation
        let filter: VirtualServer?
        let caller: CallerIdentity
        switch await admit(route: route, authorization: request.headers[.authorization], registry: registry) {
        case .refused(let response): return response
        case .admitted(let c, let f): (caller, filter) = (c, f)
        }
        switch request.method {
        case .post:
            guard let body = try? await request.body.collect(upTo: Self.maxBody) else {
                return Self.rpcError(.badRequest, id: .null, code: -32700, "parse error: the body could not be read (or exceeds 1 MiB)")
            }
            return await post(headers: request.headers, body: body, registry: registry, caller: caller, route: route, filter: filter)
        case .get: return get(request, caller: caller, route: route)
        case .delete: return delete(request, registry: registry, caller: caller, route: route)
        default: return GatewayError(code: "method_not_allowed", status: .methodNotAllowed, message: "\(request.method.rawValue) is not allowed on the MCP endpoint", headers: [.allow: "GET, POST, DELETE"]).response()
        }
    }

    /// A `POST /mcp` the event-loop driver read whole and could not forward itself (see
    /// ``ProxyFastPath/routeAggregate(_:)``), under the registry generation it was taken with.
    func handOver(_ call: ProxyFastPath.AggregateCall) async -> Response {
        let route = Route.all
        switch await admit(route: route, authorization: Gateway.Admission.authorization(call.head.headers), registry: call.registry) {
        case .refused(let response): return response
        case .admitted(let caller, let filter):
            return await post(headers: HTTPFields(wire: call.head.headers), body: call.body ?? ByteBuffer(), registry: call.registry,
                              caller: caller, route: route, filter: filter)
        }
    }

    private enum Admission {
        case admitted(CallerIdentity, VirtualServer?)
        case refused(Response)
    }

    /// The virtual server a route names (if any) and the verified caller, or the refusal.
    private func admit(route: Route, authorization: String?, registry: Registry) async -> Admission {
        var filter: VirtualServer?
        if let name = route.virtualName {
            guard let server = registry.plan.virtualServers.first(where: { $0.name == name }) else {
                return .refused(GatewayError(code: "unknown_virtual_server", status: .notFound, message: "no virtual server is named '\(name)'").response())
            }
            filter = server
        }
        do {
            return .admitted(try await registry.authenticator.authenticate(authorization), filter)
        } catch {
            return .refused(error.response())
        }
    }

    // MARK: GET /api/tools

    /// For the panel: per MCP connection the user reaches, the tools they see (with their
    /// descriptions), or why there are none (consent pending with its `interaction_uri`, an error).
    func toolsDocument(_ request: Request) async -> Response {
        let registry = holder.registry
        let caller: CallerIdentity
        do {
            caller = try await registry.authenticator.authenticate(request.headers[.authorization])
        } catch {
            return error.response()
        }
        let session = sessions.implicit(caller: caller, protocolVersion: UpstreamMCP.protocolVersion, virtualServer: "/api/tools")
        let aggregator = Aggregator(proxy: proxy, registry: registry, caller: caller, session: session, filter: nil)
        let listed = await aggregator.list(.tools)
        var tools: [String: [JSONValue]] = [:]
        for tool in listed["tools"]?.array ?? [] {
            guard let name = tool["name"]?.string, let (connection, own) = AggregateNames.split(name, known: { registry.byName[$0] != nil }) else { continue }
            var entry: [String: JSONValue] = ["name": .string(own), "qualified_name": .string(name)]
            for key in ["title", "description"] { if let v = tool[key] { entry[key] = v } }
            tools[connection, default: []].append(.object(entry))
        }
        var failures: [String: JSONValue] = [:]
        for failure in listed["_meta"]?[Aggregator.unavailableKey]?.array ?? [] {
            if let name = failure["connection"]?.string { failures[name] = failure }
        }
        let connections: [JSONValue] = aggregator.connections.map { c in
            var o: [String: JSONValue] = [
                "name": .string(c.name), "title": .string(c.descriptor.title), "tools": .array(tools[c.name] ?? []),
                "consent_required": .bool(failures[c.name]?["code"]?.string == "interaction_required"),
            ]
            if let failure = failures[c.name] {
                o["error"] = ["code": failure["code"] ?? .null, "message": failure["message"] ?? .null]
                if let uri = failure["interaction_uri"] { o["interaction_uri"] = uri }
            }
            return .object(o)
        }
        return Self.json(["connections": .array(connections)])
    }

    // MARK: POST

    private func post(headers: HTTPFields, body: ByteBuffer, registry: Registry, caller: CallerIdentity, route: Route, filter: VirtualServer?) async -> Response {
        if let type = headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            return GatewayError(code: "unsupported_media_type", status: .unsupportedMediaType, message: "send JSON-RPC as application/json").response()
        }
        guard let message = JSONValue.parse(body.readableBytesView) else {
            return Self.rpcError(.badRequest, id: .null, code: -32700, "parse error: the body is not JSON")
        }
        guard case .object(let fields) = message, fields["jsonrpc"] == "2.0" else {
            if case .array = message { return Self.rpcError(.badRequest, id: .null, code: -32600, "JSON-RPC batches are not supported") }
            return Self.rpcError(.badRequest, id: .null, code: -32600, "not a JSON-RPC 2.0 message")
        }
        let id = fields["id"] ?? .null
        guard let method = fields["method"]?.string else { return Response(status: .accepted) }  // a response to us: nothing to do
        let isNotification = fields["id"] == nil
        let params = fields["params"]?.object ?? [:]

        let session: AggregateSessions.Session
        var stateless = false
        if headers[.mcpProtocolVersion] == Self.statelessVersion || params["_meta"]?[Self.metaVersion]?.string == Self.statelessVersion {
            stateless = true
            session = sessions.implicit(caller: caller, protocolVersion: Self.statelessVersion, virtualServer: route.virtualName)
        } else if method == "initialize" {
            guard !isNotification else { return Response(status: .accepted) }
            let asked = params["protocolVersion"]?.string ?? ""
            let version = Self.handshakeVersions.contains(asked) ? asked : Self.handshakeVersions[0]
            let (opened, evicted) = sessions.open(caller: caller, protocolVersion: version, virtualServer: route.virtualName)
            close(evicted + sessions.expired(), registry: registry)
            logger.info("mcp session started", metadata: ["version": "\(version)", "virtual_server": "\(route.virtualName ?? "-")"])
            var response = Self.reply(id: id, result: [
                "protocolVersion": .string(version), "capabilities": Self.capabilities, "serverInfo": Self.serverInfo(filter),
                "instructions": "Tools from every server connected through Switchboard, named {connection}__{tool}.",
            ])
            response.headers[.mcpSessionID] = opened.id
            return response
        } else {
            guard let sessionID = headers[.mcpSessionID] else {
                return Self.rpcError(.badRequest, id: id, code: -32600, "missing Mcp-Session-Id: call initialize first")
            }
            guard let found = sessions.find(sessionID, caller: caller, virtualServer: route.virtualName) else {
                return Self.rpcError(.notFound, id: id, code: -32001, "unknown or ended session: initialize again")
            }
            if let version = headers[.mcpProtocolVersion], version != found.protocolVersion {
                return Self.rpcError(.badRequest, id: id, code: -32600, "MCP-Protocol-Version '\(version)' is not the negotiated '\(found.protocolVersion)'")
            }
            session = found
        }
        if isNotification { return Self.withSession(Response(status: .accepted), session, stateless) }

        let aggregator = Aggregator(proxy: proxy, registry: registry, caller: caller, session: session, filter: filter)
        let outcome: Aggregator.Outcome
        switch method {
        case "ping": outcome = .result([:])
        case "server/discover" where stateless:
            outcome = .result(["supportedVersions": [.string(Self.statelessVersion)], "capabilities": Self.capabilities,
                               "_meta": ["io.modelcontextprotocol/serverInfo": Self.serverInfo(filter)]])
        case let m where Aggregator.Listing(rawValue: m) != nil:
            outcome = .result(await aggregator.list(Aggregator.Listing(rawValue: m)!))
        // (A stateless client's results carry `resultType`: those are rewritten, not passed on.)
        case "tools/call": outcome = await aggregator.callTool(params, id: id, passThrough: !stateless)
        case "prompts/get", "resources/read": outcome = await aggregator.routed(method, params)
        default: outcome = .error(code: -32601, message: "method '\(method)' is not supported by the gateway's MCP endpoint")
        }
        return Self.withSession(Self.answer(outcome, id: id, stateless: stateless), session, stateless)
    }

    // MARK: GET and DELETE

    /// The server-to-client stream: list-changed notifications, keep-alive comments between.
    private func get(_ request: Request, caller: CallerIdentity, route: Route) -> Response {
        guard request.headers[.accept]?.lowercased().contains("text/event-stream") == true else {
            return GatewayError(code: "not_acceptable", status: .notAcceptable, message: "GET needs Accept: text/event-stream").response()
        }
        guard let sessionID = request.headers[.mcpSessionID] else {
            return GatewayError(code: "missing_session", status: .badRequest, message: "missing Mcp-Session-Id").response()
        }
        guard let session = sessions.find(sessionID, caller: caller, virtualServer: route.virtualName) else {
            return GatewayError(code: "unknown_session", status: .notFound, message: "unknown or ended session").response()
        }
        let notes = session.listen()
        let (holder, proxy) = (self.holder, self.proxy)
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache", .mcpSessionID: sessionID]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            let (chunks, feed) = AsyncStream.makeStream(of: ByteBuffer.self, bufferingPolicy: .bufferingNewest(256))
            let forward = Task {
                for await note in notes { feed.yield(ByteBuffer(string: "event: message\ndata: " + String(decoding: note.encoded(), as: UTF8.self) + "\n\n")) }
                feed.finish()  // the session ended
            }
            // Keep-alives every 15 s, so proxies on the way do not cut an idle stream (and a
            // client that left is noticed at the next write).
            let keepAlive = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(15))
                    feed.yield(ByteBuffer(string: ": keep-alive\n\n"))
                }
            }
            // The upstreams' own notifications, from their streams, while this one is open.
            let upstreams = Task { await Self.followUpstreams(of: session, holder: holder, proxy: proxy) }
            defer {
                forward.cancel()
                keepAlive.cancel()
                upstreams.cancel()
            }
            try await writer.write(ByteBuffer(string: ": stream open\n\n"))
            for await chunk in chunks { try await writer.write(chunk) }
            try await writer.finish(nil)
        })
    }

    /// Follows the `GET` stream of every upstream session behind `session` (new ones as they
    /// open, polled every 250 ms) and passes their list-changed notifications on, until cancelled.
    /// A stream that ends soon after it opened (a server without one) is not asked again for
    /// the same upstream session; one that ran a while (an idle cut) is.
    static func followUpstreams(of session: AggregateSessions.Session, holder: RegistryHolder, proxy: ProxyHandler) async {
        final class Followed: Sendable { let map = Mutex<[String: ObjectIdentifier]>([:]) }
        let followed = Followed()
        await withTaskGroup(of: Void.self) { group in
            while !Task.isCancelled {
                for name in session.upstream.connections {
                    guard let upstream = session.upstream.current(name), upstream.id != nil else { continue }
                    let key = ObjectIdentifier(upstream)
                    guard followed.map.withLock({ f in
                        if f[name] == key { return false }
                        f[name] = key
                        return true
                    }) else { continue }
                    let registry = holder.registry
                    guard let connection = registry.byName[name] else { continue }
                    let client = UpstreamMCP(proxy: proxy, registry: registry, connection: connection, caller: session.caller, sessions: session.upstream)
                    group.addTask {
                        let started = ContinuousClock.now
                        await client.follow(upstream) { note in session.notify(note) }
                        if ContinuousClock.now - started > .seconds(5) { followed.map.withLock { if $0[name] == key { $0[name] = nil } } }
                    }
                }
                try? await Task.sleep(for: .milliseconds(250))
            }
            group.cancelAll()
        }
    }

    /// Ends the session and the upstream sessions behind it.
    private func delete(_ request: Request, registry: Registry, caller: CallerIdentity, route: Route) -> Response {
        guard let sessionID = request.headers[.mcpSessionID] else {
            return GatewayError(code: "missing_session", status: .badRequest, message: "missing Mcp-Session-Id").response()
        }
        guard let session = sessions.find(sessionID, caller: caller, virtualServer: route.virtualName) else {
            return GatewayError(code: "unknown_session", status: .notFound, message: "unknown or ended session").response()
        }
        sessions.end(session)
        close([session], registry: registry)
        return Response(status: .ok)
    }

    /// Closes `ended` sessions: their streams, and their upstream sessions (in the background).
    private func close(_ ended: [AggregateSessions.Session], registry: Registry) {
        guard !ended.isEmpty else { return }
        let proxy = self.proxy
        for session in ended { session.finish() }
        Task {
            for session in ended {
                // As the user it was last used by (a credential that can no longer be had just
                // leaves the upstream session to idle out there).
                let caller = session.caller
                for name in session.upstream.connections {
                    guard let connection = registry.byName[name] else { continue }
                    await UpstreamMCP(proxy: proxy, registry: registry, connection: connection, caller: caller, sessions: session.upstream).close()
                }
            }
        }
    }

    /// Ends every open notification stream (graceful shutdown: the clients reconnect elsewhere).
    func endStreams() {
        for session in sessions.all { session.finish() }
    }

    // MARK: Changes

    /// After a reload: upstream sessions of changed connections are dropped, and every client is
    /// told its lists changed when an MCP connection or a virtual server came, went or changed.
    static func registryChanged(from old: Registry, to new: Registry, sessions: AggregateSessions) {
        let names = Set(old.connections.map(\.name) + new.connections.map(\.name))
        var changed: [String] = []
        for name in names {
            let (a, b) = (old.byName[name], new.byName[name])
            guard a?.descriptor.kind == .mcpServer || b?.descriptor.kind == .mcpServer else { continue }
            if a !== b || a?.enabled != b?.enabled { changed.append(name) }
        }
        guard !changed.isEmpty || old.plan.virtualServers != new.plan.virtualServers else { return }
        for session in sessions.all {
            for name in changed { _ = session.upstream.take(name) }
            for list in ["tools", "prompts", "resources"] {
                session.notify(["jsonrpc": "2.0", "method": .string("notifications/\(list)/list_changed")])
            }
        }
    }

    // MARK: Answers

    static func serverInfo(_ filter: VirtualServer?) -> JSONValue {
        ["name": .string(filter.map { "switchboard/\($0.name)" } ?? "switchboard"), "title": .string(filter?.title ?? "Switchboard"), "version": "1.0"]
    }

    static func answer(_ outcome: Aggregator.Outcome, id: JSONValue, stateless: Bool) -> Response {
        switch outcome {
        case .message(let message, let stepUp):
            guard case .object(var fields) = message else { return rpcError(.ok, id: id, code: -32603, "the server's answer was not JSON-RPC") }
            fields["id"] = id
            if stateless, case .object(var result)? = fields["result"] {
                result["resultType"] = "complete"
                fields["result"] = .object(result)
            }
            var response = json(.object(fields))
            if let stepUp { response.headers[HTTPField.Name(HeaderFilter.stepUpHeader)!] = stepUp }
            return response
        case .result(var result):
            if stateless, case .object(var o) = result {
                o["resultType"] = "complete"
                result = .object(o)
            }
            return reply(id: id, result: result)
        case .relayed(let relayed):
            // As the event-loop driver passes it on (``ProxyFastPath/routeAggregate(_:)``): the
            // upstream's answer as the pipeline shaped it; `withSession` puts the gateway's session id in.
            return Response(status: .ok, headers: relayed.headers, body: .init(byteBuffer: relayed.body))
        case .error(let code, let message, let data):
            var error: [String: JSONValue] = ["code": .number(Double(code)), "message": .string(message)]
            if let data { error["data"] = data }
            return json(["jsonrpc": "2.0", "id": id, "error": .object(error)])
        }
    }

    static func withSession(_ response: Response, _ session: AggregateSessions.Session, _ stateless: Bool) -> Response {
        guard !stateless else { return response }
        var response = response
        response.headers[.mcpSessionID] = session.id
        return response
    }

    static func reply(id: JSONValue, result: JSONValue) -> Response {
        json(["jsonrpc": "2.0", "id": id, "result": result])
    }

    static func json(_ body: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: body.encoded())))
    }

    static func rpcError(_ status: HTTPResponse.Status, id: JSONValue, code: Int, _ message: String) -> Response {
        json(["jsonrpc": "2.0", "id": id, "error": ["code": .number(Double(code)), "message": .string(message)]], status: status)
    }
}

extension HTTPField.Name {
    static let mcpSessionID = HTTPField.Name("Mcp-Session-Id")!
    static let mcpProtocolVersion = HTTPField.Name("MCP-Protocol-Version")!
}
