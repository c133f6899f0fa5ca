import AsyncHTTPClient
import HTTPTypes
import NIOCore
import NIOHTTP1
import PluginAPI

/// The proxy's event-loop path: a request whose every first check can be answered without
/// waiting — route found and enabled, headers within limits, a small body of known length, a
/// plain-HTTP upstream, the caller's ID token already verified, the credential already cached
/// — is forwarded by a channel handler (``ProxyFastPathHandler``) on the caller's event loop,
/// with no Swift task and no hop to the cooperative pool. Anything else (first calls, streamed
/// bodies, HTTPS upstreams, errors the async path words) goes to ``ProxyHandler`` unchanged;
/// an answer that needs its logic (a refresh after 401, a scope step-up, a streamed body) is
/// handed to it too, standing in for its first upstream call.
///
/// Why: on 2 cores, Hummingbird's per-request task and the hops between the event loops and
/// the task pool cost more than the proxying itself (bench/results/notes.md).
struct ProxyFastPath: Sendable {
    let proxy: ProxyHandler

    /// Methods the event-loop path forwards (HEAD's `Content-Length` describes a body that does
    /// not come; OPTIONS, TRACE and CONNECT are rare and left to the async path).
    private static func forwardable(_ method: NIOHTTP1.HTTPMethod) -> HTTPRequest.Method? {
        switch method {
        case .POST: return .post
        case .GET: return .get
        case .DELETE: return .delete
        case .PUT: return .put
        case .PATCH: return .patch
        default: return nil
        }
    }

    /// A request taken by the event-loop path, with everything its checks found. A class:
    /// it moves between the handler's states and closures without being copied.
    final class Request {
        let head: HTTPRequestHead
        let method: HTTPRequest.Method
        let target: ProxyTarget
        let connection: Connection
        let authenticator: InboundAuthenticator
        let authorization: String
        /// Nil until the caller's token is verified (a first call: see ``ProxyFastPathHandler``).
        var caller: CallerIdentity?
        /// Nil until known: the plugin's cached (or fixed) credential for `caller`.
        var credential: Credential?
        let origin: UpstreamOrigin
        let started: ContinuousClock.Instant
        var body: ByteBuffer?

        init(
            head: HTTPRequestHead, method: HTTPRequest.Method, target: ProxyTarget, connection: Connection, authenticator: InboundAuthenticator,
            authorization: String, origin: UpstreamOrigin, started: ContinuousClock.Instant
        ) {
            self.head = head
            self.method = method
            self.target = target
            self.connection = connection
            self.authenticator = authenticator
            self.authorization = authorization
            self.origin = origin
            self.started = started
        }
    }

    /// The request as the event-loop path takes it, or nil: the async path's turn.
    func take(_ head: HTTPRequestHead) -> Request? {
        // HTTP/1.1 keep-alive only: the async path closes after `Connection: close` or HTTP/1.0.
        guard head.version == .http1_1, head.isKeepAlive, let method = Self.forwardable(head.method),
              let target = try? ProxyTarget.parse(head.uri)
        else { return nil }
        let registry = proxy.holder.registry
        guard let connection = try? proxy.route(target, in: registry, method: method),
              let origin = connection.upstreamOrigin, origin.isPlainHTTP
        else { return nil }
        let headers = head.headers
        let settings = registry.settings
        guard headers.count <= settings.maxHeaderCount else { return nil }
        var total = 0
        for (name, value) in headers { total += name.utf8.count + value.utf8.count }
        guard total <= settings.maxHeaderBytes,
              !headers.contains(name: "transfer-encoding"), !headers.contains(name: "expect"), !headers.contains(name: "upgrade")
        else { return nil }
        if let value = headers.first(name: "content-length") {
            guard let n = Int(value), n >= 0, n <= connection.maxRequestBody, n <= settings.maxReplayBody else { return nil }
        }
        // A token not verified yet is verified on the way (once however many requests carry
        // it); a caller without one gets the async path's 401.
        guard let authorization = headers.first(name: "authorization") else { return nil }
        let request = Request(
            head: head, method: method, target: target, connection: connection, authenticator: registry.authenticator,
            authorization: authorization, origin: origin, started: .now)
        if let caller = registry.authenticator.cachedCaller(authorization) {
            guard let credential = cachedCredential(connection, caller: caller) else { return nil }
            request.caller = caller
            request.credential = credential
        }
        return request
    }

    /// The credential ``CredentialResolver`` would hand out now, if it needs no plugin call.
    func cachedCredential(_ connection: Connection, caller: CallerIdentity) -> Credential? {
        guard let strategy = connection.strategy, connection.strategyContext != nil else { return Credential() }
        if let fixed = strategy.fixedCredential { return fixed }
        let user: String
        switch strategy.credentialScope {
        case .uncached: return nil
        case .shared: user = ""
        case .perUser: user = caller.userKey
        }
        let scopes = connection.scopes(for: caller.userKey)
        let key = CredentialKey(user: user, scopes: scopes.map { $0.sorted().joined(separator: " ") } ?? "*")
        guard case .inject(let credential)? = connection.credentials.value(forKey: key) else { return nil }
        return credential
    }

    /// The upstream request (body in memory).
    func upstreamRequest(for request: Request) -> UpstreamRequest {
        var path = request.origin.basePath
        path += request.target.remainder
        if path.isEmpty { path = "/" }
        if let query = request.target.query { path += "?"; path += query }
        return UpstreamRequest(
            origin: request.origin, method: request.head.method, target: path,
            headers: HeaderFilter.upstreamHeaders(from: request.head.headers, inject: request.credential?.headers ?? [:]),
            body: request.body.map { .bytes($0) } ?? .none)
    }

    /// Which answers the async path must handle for one request: a refresh (401) or a step-up
    /// (403, or an MCP tool result saying `insufficient_scope`) when the plugin caches
    /// credentials, and statuses whose framing it handles.
    struct AnswerRule: Sendable {
        /// The plugin caches credentials (a 401 or 403 may be answered by a fresh one).
        var caching: Bool
        /// An MCP `tools/call` through such a plugin (its result may ask for more scopes).
        var toolCall: Bool

        func needsAsyncPath(_ head: HTTPResponseHead) -> Bool {
            let status = head.status.code
            if status < 200 || status == 204 || status == 304 { return true }
            return caching && (status == 401 || status == 403)
        }

        /// A JSON answer to a tool call that a scan must clear (or the async path must read).
        func mayCarryScopeChallenge(_ head: HTTPResponseHead) -> Bool {
            toolCall && head.status.code == 200 && JSONRPCPeek.isJSON(contentType: head.headers.first(name: "content-type"))
        }
    }

    func answerRule(for request: Request) -> AnswerRule {
        guard let strategy = request.connection.strategy, strategy.credentialScope != .uncached else { return AnswerRule(caching: false, toolCall: false) }
        let toolCall = request.target.prefix == .mcp && request.body.map(JSONRPCPeek.isToolCall) == true
        return AnswerRule(caching: true, toolCall: toolCall)
    }

    /// Whether a whole answer can go straight back, or needs the async path's logic.
    func needsAsyncPath(_ rule: AnswerRule, head: HTTPResponseHead, body: ByteBuffer) -> Bool {
        rule.needsAsyncPath(head) || (rule.mayCarryScopeChallenge(head) && JSONRPCPeek.mentions("insufficient_scope", in: body))
    }

    /// Records the answer and returns the head to send back.
    func answerHead(_ request: Request, head: HTTPResponseHead, bodyLength: Int) -> HTTPResponseHead {
        proxy.logLine(connection: request.connection.name, method: request.method, status: Int(head.status.code), started: request.started, bytes: bodyLength, eventLoop: true)
        return outgoingHead(request, head: head, contentLength: bodyLength)
    }

    /// Records a relayed answer and returns the head to send back: its length as the upstream
    /// gave it, or none (NIO's encoder then chunks it). Logged when it ends.
    func relayedHead(_ request: Request, head: HTTPResponseHead) -> HTTPResponseHead {
        outgoingHead(request, head: head, contentLength: head.headers.first(name: "content-length").flatMap { Int($0) })
    }

    private func outgoingHead(_ request: Request, head: HTTPResponseHead, contentLength: Int?) -> HTTPResponseHead {
        if let caller = request.caller, let credential = request.credential {
            proxy.record(status: Int(head.status.code), connection: request.connection, caller: caller, credential: credential)
        }
        var headers = HeaderFilter.downstreamHeaders(keeping: head.headers)
        if let contentLength { headers.add(name: "Content-Length", value: String(contentLength)) }
        headers.replaceOrAdd(name: "Server", value: "switchboard")  // as the async path does (and nginx)
        // A proxy with a clock adds `Date` when the upstream sent none (RFC 9110 §6.6.1).
        if !headers.contains(name: "date") { headers.add(name: "Date", value: HTTPDateHeader.now()) }
        return HTTPResponseHead(version: .http1_1, status: head.status, headers: headers)
    }

    /// The gateway error for a failed upstream call, recorded as the async path records it.
    func failure(_ request: Request, error: any Error) -> GatewayError {
        let mapped = UpstreamErrorMapping.map(error, connection: request.connection)
        if mapped.status.code >= 500 {
            request.connection.activity.recordFailure(at: proxy.clock.now(), code: mapped.code, message: mapped.message, upstream: true)
        }
        proxy.logLine(connection: request.connection.name, method: request.method, status: Int(mapped.status.code), started: request.started, error: mapped.code, eventLoop: true)
        return mapped
    }
}
