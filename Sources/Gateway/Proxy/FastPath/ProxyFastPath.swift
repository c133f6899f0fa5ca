import AsyncHTTPClient
import HTTPTypes
import NIOCore
import NIOHTTP1
import PluginAPI
import Upstream

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
    /// The gateway's own `/mcp` endpoint: its routed calls are forwarded here when they can be
    /// (``routeAggregate(_:)``), and handed to it when not.
    let aggregate: AggregateEndpoint

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

    /// A request taken by the event-loop driver: the pipeline's exchange (admitted under one
    /// registry generation) plus what this driver needs of the wire, in one object (one
    /// allocation per request on the hot path). It moves between the handler's states and
    /// closures without being copied, and is handed to the async driver as the exchange it is.
    final class Request: ProxyExchange, @unchecked Sendable {
        let head: HTTPRequestHead
        let authorization: String
        let origin: UpstreamOrigin
        var body: ByteBuffer?
        /// For a `tools/call` taken at `/mcp`: the client's request as it came (handed to the
        /// endpoint when this driver cannot finish it) and the gateway session whose id the
        /// answer carries instead of the upstream's.
        var aggregate: (call: AggregateCall, sessionID: String)?

        var authenticator: InboundAuthenticator { registry.authenticator }

        init(
            registry: Registry, target: ProxyTarget, connection: Connection, method: HTTPRequest.Method, head: HTTPRequestHead,
            authorization: String, origin: UpstreamOrigin
        ) {
            self.head = head
            self.authorization = authorization
            self.origin = origin
            super.init(registry: registry, target: target, connection: connection, method: method, driver: .eventLoop)
        }
    }

    /// The request as the event-loop driver takes it, or nil: the async driver's turn (which
    /// also words every refusal). The admission rules are the pipeline's (``Admission``); the
    /// rest is what this driver can do without waiting.
    func take(_ head: HTTPRequestHead) -> Request? {
        // HTTP/1.1 keep-alive only: the async path closes after `Connection: close` or HTTP/1.0.
        guard head.version == .http1_1, head.isKeepAlive, let method = Self.forwardable(head.method),
              let target = try? ProxyTarget.parse(head.uri)
        else { return nil }
        let registry = proxy.holder.registry  // the one read: the exchange keeps this generation
        guard let connection = try? Admission.route(target, in: registry, method: method),
              let origin = connection.upstreamOrigin, origin.isPlainHTTP
        else { return nil }
        let headers = head.headers
        let settings = registry.settings
        var bytes = 0
        for (name, value) in headers { bytes += name.utf8.count + value.utf8.count }
        guard (try? Admission.checkHeaders(count: headers.count, bytes: bytes, settings: settings)) != nil,
              !headers.contains(name: "transfer-encoding"), !headers.contains(name: "expect"), !headers.contains(name: "upgrade")
        else { return nil }
        if let value = headers.first(name: "content-length") {
            // Only bodies it keeps whole (the async driver streams the others).
            guard let n = Int(value), n >= 0, (try? Admission.checkBody(contentLength: n, connection: connection)) != nil,
                  n == 0 || Admission.keepsBody(contentLength: n, settings: settings)
            else { return nil }
        }
        // A token not verified yet is verified on the way (once however many requests carry
        // it); a caller without one gets the async path's 401.
        guard let authorization = Admission.authorization(headers) else { return nil }
        let request = Request(
            registry: registry, target: target, connection: connection, method: method, head: head, authorization: authorization, origin: origin)
        if let caller = registry.authenticator.cachedCaller(authorization) {
            guard let credential = CredentialResolver.cached(for: connection, caller: caller) else { return nil }
            request.caller = caller
            request.credential = credential
        }
        return request
    }

    /// The upstream request (body in memory).
    func upstreamRequest(for request: Request) -> UpstreamRequest {
        var upstream = UpstreamRequest(
            origin: request.origin, method: request.head.method, target: request.upstreamTarget ?? "/",
            headers: HeaderFilter.upstreamHeaders(from: request.head.headers, inject: request.credential?.headers ?? [:]),
            body: request.body.map { .bytes($0) } ?? .none)
        if let span = request.span { CallTracing.propagate(span.context, into: &upstream, of: request) }
        return upstream
    }

    /// Which answers this driver leaves to the async driver: those the answer policy does not
    /// simply pass (a refresh, a step-up, a tool result to read), and statuses whose framing
    /// the async driver's writer handles.
    struct AnswerRule: Sendable {
        let policy: AnswerPolicy
        /// A call taken at `/mcp`: only a plain 200 is passed on here (the endpoint words the rest).
        var aggregate = false

        /// Framing this driver's writer does not do (1xx, 204, 304).
        static func framingNeedsAsyncPath(_ head: HTTPResponseHead) -> Bool {
            let status = head.status.code
            return status < 200 || status == 204 || status == 304
        }

        func decision(_ head: HTTPResponseHead) -> AnswerPolicy.Decision {
            policy.judge(
                status: Int(head.status.code), wwwAuthenticate: head.headers.first(name: "www-authenticate"),
                contentType: head.headers.first(name: "content-type"), refreshed: false)
        }

        /// Whether a streamed answer can be relayed here as it comes (nothing to judge in it).
        func relays(_ head: HTTPResponseHead) -> Bool {
            guard !Self.framingNeedsAsyncPath(head), !aggregate || head.status == .ok else { return false }
            if case .pass = decision(head) { return true }
            return false
        }

        /// Whether a whole answer goes to the async driver (which replays the call).
        func needsAsyncPath(_ head: HTTPResponseHead, body: ByteBuffer) -> Bool {
            if Self.framingNeedsAsyncPath(head) || (aggregate && head.status != .ok) { return true }
            switch decision(head) {
            case .pass: return false
            case .refresh, .stepUp: return true
            case .readBody: return AnswerPolicy.challenge(inJSON: body) != nil
            case .readFirstEvent: return AnswerPolicy.challenge(inFirstEvent: body) != nil
            }
        }
    }

    func answerRule(for request: Request) -> AnswerRule {
        AnswerRule(policy: request.answerPolicy(body: request.body), aggregate: request.aggregate != nil)
    }

    /// Records the answer and returns the head to send back.
    func answerHead(_ request: Request, head: HTTPResponseHead, bodyLength: Int) -> HTTPResponseHead {
        let recorder = proxy.recorder
        recorder.answered(request, status: Int(head.status.code))
        recorder.log(request, status: Int(head.status.code), bytes: bodyLength)
        return Self.sessionPutBack(request, HTTPResponseHead(version: .http1_1, status: head.status, headers: ResponseShaper.headers(from: head.headers, contentLength: bodyLength)))
    }

    /// Records a relayed answer and returns the head to send back: its length as the upstream
    /// gave it, or none (NIO's encoder then chunks it). Logged when it ends.
    func relayedHead(_ request: Request, head: HTTPResponseHead) -> HTTPResponseHead {
        proxy.recorder.answered(request, status: Int(head.status.code))
        let length = head.headers.first(name: "content-length").flatMap { Int($0) }
        return Self.sessionPutBack(request, HTTPResponseHead(version: .http1_1, status: head.status, headers: ResponseShaper.headers(from: head.headers, contentLength: length)))
    }

    /// A call taken at `/mcp` answers with the gateway's session id, never the upstream's.
    private static func sessionPutBack(_ request: Request, _ head: HTTPResponseHead) -> HTTPResponseHead {
        guard let sessionID = request.aggregate?.sessionID else { return head }
        var head = head
        head.headers.replaceOrAdd(name: "Mcp-Session-Id", value: sessionID)
        return head
    }

    /// The gateway error for a failed upstream call, recorded as the async driver records it.
    func failure(_ request: Request, error: any Error) -> GatewayError {
        let mapped = UpstreamErrorMapping.map(error, connection: request.connection)
        proxy.recorder.failed(request, error: mapped)
        return mapped
    }
}
