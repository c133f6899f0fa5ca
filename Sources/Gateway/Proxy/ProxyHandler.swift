import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import PluginAPI

/// The request pipeline of `/mcp/{name}` and `/rest/{name}/…`:
/// route → limits → inbound identity → plugin credential → upstream call → streamed answer.
struct ProxyHandler: Sendable {
    let holder: RegistryHolder
    let upstreamClient: UpstreamClient
    let logger: Logger
    let clock: any GatewayClock

    /// `prefetched`: the upstream's answer to this very request, already received by the
    /// event-loop path (``ProxyFastPath``), which hands over what needs this path's logic
    /// (a refresh, a step-up, a streamed answer); it stands for the first upstream call.
    func handle(_ request: Request, target: ProxyTarget, prefetched: HTTPClientResponse? = nil) async -> Response {
        let started = ContinuousClock.now
        let registry = holder.registry  // this request keeps this generation to the end
        let connection: Connection
        do {
            connection = try route(target, in: registry, method: request.method)
        } catch {
            return error.response()
        }
        do {
            return try await forward(request, target: target, connection: connection, registry: registry, started: started, prefetched: prefetched)
        } catch {
            // Only failures of the connection itself (upstream, credential) count against it;
            // a caller's bad token or oversized body says nothing about the connection.
            let isUpstream = error.code.hasPrefix("upstream_")
            if error.status.code >= 500, isUpstream {
                connection.activity.recordFailure(at: clock.now(), code: error.code, message: error.message, upstream: isUpstream)
            }
            logLine(connection: connection.name, method: request.method, status: Int(error.status.code), started: started, error: error.code)
            return error.response()
        }
    }

    func route(_ target: ProxyTarget, in registry: Registry, method: HTTPRequest.Method) throws(GatewayError) -> Connection {
        let table = target.prefix == .mcp ? registry.mcpRoutes : registry.restRoutes
        guard let connection = table[target.segment] else {
            throw GatewayError.unknownConnection((target.prefix == .mcp ? "/mcp/" : "/rest/") + target.segment)
        }
        guard connection.enabled else { throw GatewayError.disabled(connection.name, reason: connection.plan.disabledReason) }
        if target.prefix == .mcp {
            guard target.remainder.isEmpty || target.remainder == "/" else {
                throw GatewayError(code: "not_found", status: .notFound, message: "an MCP route has no sub-paths", connection: connection.name)
            }
            guard method == .post || method == .get || method == .delete else {
                throw GatewayError.methodNotAllowed(method, allowed: "GET, POST, DELETE", connection: connection.name)
            }
        }
        return connection
    }

    private func forward(
        _ request: Request, target: ProxyTarget, connection: Connection, registry: Registry, started: ContinuousClock.Instant,
        prefetched: HTTPClientResponse?
    ) async throws(GatewayError) -> Response {
        let settings = registry.settings
        let fields = request.headers
        try checkHeaderLimits(fields, settings: settings)
        let contentLength = fields[.contentLength].flatMap { Int($0) }
        if let contentLength, contentLength > connection.maxRequestBody {
            throw GatewayError.payloadTooLarge(limit: connection.maxRequestBody, connection: connection.name)
        }

        let caller = try await registry.authenticator.authenticate(fields[.authorization])

        // A request can be replayed (token refresh, scope step-up) when its plugin caches
        // credentials and its body is small enough to keep; everything else streams once.
        // Small bodies with a known length are read first (one buffer upstream, resendable by
        // the HTTP client on a fresh connection, replayable); larger ones stream.
        let retryable = connection.strategy.map { $0.credentialScope != .uncached } ?? false
        var kept: ByteBuffer?
        if let contentLength, contentLength > 0, contentLength <= settings.maxReplayBody {
            do { kept = try await request.body.collect(upTo: contentLength) } catch {
                throw GatewayError.invalidPath("the request body could not be read", connection: connection.name)
            }
        }
        let hasBody = (contentLength ?? 0) > 0 || fields[.transferEncoding] != nil
        let canReplay = retryable && (kept != nil || !hasBody)
        // Whether this is an MCP tool call (its JSON answer may carry an insufficient_scope tool
        // result): a byte scan, not a JSON parse, on the hot path. The JSON-RPC id is read only
        // when an error must be answered in JSON-RPC form.
        let mcpBody = target.prefix == .mcp ? kept : nil
        let isToolCall = retryable && mcpBody.map(JSONRPCPeek.isToolCall) == true

        var scopes = connection.scopes(for: caller.userKey)
        var credential = try await obtain(connection, caller: caller, scopes: scopes, reason: .initial, mcpBody: mcpBody)
        var refreshed = false
        var stepUps = 0
        var widened: Set<String> = []  // scopes the step-ups added, told to the caller
        var first = prefetched
        while true {
            let response: HTTPClientResponse
            if let answered = first {
                first = nil
                response = answered
            } else {
                let upstream = try buildUpstream(request, target: target, connection: connection, credential: credential, kept: kept, contentLength: contentLength)
                do {
                    // No logger handed to the client: at trace level it would print the injected credential.
                    response = try await upstreamClient.execute(upstream, timeout: connection.responseTimeout)
                } catch {
                    throw UpstreamErrorMapping.map(error, connection: connection)
                }
            }
            let status = Int(response.status.code)
            if canReplay, let strategy = connection.strategy {
                // 1. The credential was refused (expired, revoked): get a fresh one, replay once.
                if status == 401, !refreshed {
                    refreshed = true
                    await discard(response)
                    logger.info("upstream refused the credential; refreshing", metadata: ["connection": "\(connection.name)"])
                    credential = try await obtain(connection, caller: caller, scopes: scopes, reason: .refresh, mcpBody: mcpBody)
                    continue
                }
                // 2. Scope step-up: a 403 challenge, or an MCP tool result saying insufficient_scope.
                var challenge: ScopeChallenge?
                var buffered: ByteBuffer?
                if status == 403 {
                    challenge = ScopeChallengeParser.fromHeader(response.headers.first(name: "www-authenticate"))
                } else if status == 200, isToolCall,
                          JSONRPCPeek.isJSON(contentType: response.headers.first(name: "content-type")) {
                    buffered = try? await response.body.collect(upTo: settings.maxReplayBody)
                    if let buffered, JSONRPCPeek.mentions("insufficient_scope", in: buffered) {
                        challenge = ScopeChallengeParser.fromToolResult(Data(buffered.readableBytesView))
                    }
                }
                if let challenge, stepUps < 2, case .possible(let wanted) = strategy.stepUp(for: challenge, held: credential) {
                    stepUps += 1
                    if buffered == nil { await discard(response) }
                    connection.activity.recordStepUp()
                    logger.info("scope step-up", metadata: [
                        "connection": "\(connection.name)", "scopes": "\(wanted.sorted().joined(separator: " "))", "step": "\(stepUps)",
                    ])
                    scopes = wanted
                    let held = credential.scopes
                    credential = try await obtain(connection, caller: caller, scopes: wanted, reason: .stepUp, mcpBody: mcpBody)
                    widened.formUnion((credential.scopes.isEmpty ? wanted : credential.scopes).subtracting(held))
                    connection.remember(scopes: credential.scopes.isEmpty ? wanted : credential.scopes, for: caller.userKey)
                    continue
                }
                if let buffered {
                    return answer(response, status: status, body: .buffered(buffered), connection: connection, caller: caller, credential: credential, method: request.method, started: started, widened: widened)
                }
            }
            // A small answer of known length (not an event stream) is read whole and sent as one
            // buffer: cheaper than a streamed body, and it delays nothing (its length is known).
            // (Not for HEAD: its Content-Length describes a body that is not sent.)
            if request.method != .head, let length = response.headers.first(name: "content-length").flatMap(Int.init), length <= UpstreamResponseStart.wholeLimit,
               response.headers.first(name: "content-type")?.lowercased().hasPrefix("text/event-stream") != true,
               let whole = try? await response.body.collect(upTo: length)
            {
                return answer(response, status: status, body: .buffered(whole), connection: connection, caller: caller, credential: credential, method: request.method, started: started, widened: widened)
            }
            return answer(response, status: status, body: .stream, connection: connection, caller: caller, credential: credential, method: request.method, started: started, widened: widened)
        }
    }

    enum AnswerBody {
        case stream
        case buffered(ByteBuffer)
    }

    /// Records the outcome and streams (or returns the already-read) upstream answer.
    private func answer(
        _ response: HTTPClientResponse, status: Int, body: AnswerBody, connection: Connection, caller: CallerIdentity, credential: Credential,
        method: HTTPRequest.Method, started: ContinuousClock.Instant, widened: Set<String> = []
    ) -> Response {
        record(status: status, connection: connection, caller: caller, credential: credential)
        var headers = HeaderFilter.downstreamHeaders(from: response.headers)
        if !widened.isEmpty { headers[HTTPField.Name(HeaderFilter.stepUpHeader)!] = widened.sorted().joined(separator: " ") }
        let name = connection.name
        switch body {
        case .buffered(let buffer):
            logLine(connection: name, method: method, status: status, started: started, bytes: buffer.readableBytes)
            return Response(status: HTTPResponse.Status(code: status, reasonPhrase: response.status.reasonPhrase), headers: headers, body: ResponseBody(byteBuffer: buffer))
        case .stream:
            let length = response.headers.first(name: "content-length").flatMap { Int($0) }
            let upstreamBody = response.body
            let streamed = ResponseBody(contentLength: method == .head ? nil : length) { writer in
                var bytes = 0
                do {
                    for try await chunk in upstreamBody {
                        bytes += chunk.readableBytes
                        try await writer.write(chunk)
                    }
                    try await writer.finish(nil)
                    self.logLine(connection: name, method: method, status: status, started: started, bytes: bytes)
                } catch {
                    self.logLine(connection: name, method: method, status: status, started: started, bytes: bytes, error: "stream_interrupted")
                    throw error
                }
            }
            return Response(status: HTTPResponse.Status(code: status, reasonPhrase: response.status.reasonPhrase), headers: headers, body: streamed)
        }
    }

    /// What an upstream answer says of the connection (and of the user's state on it).
    func record(status: Int, connection: Connection, caller: CallerIdentity, credential: Credential) {
        let now = clock.now()
        if status >= 500 {
            connection.activity.recordFailure(at: now, code: "upstream_status", message: "the upstream answered \(status)", upstream: true)
        } else if status == 401 || status == 403 {
            connection.activity.recordFailure(at: now, code: "upstream_rejected_credential", message: "the upstream answered \(status)", upstream: true)
            if connection.tracksUsers {
                connection.activity.recordUser(caller.userKey, .init(state: "error", at: now, error: "upstream_rejected_credential"))
            }
        } else {
            connection.activity.recordSuccess(at: now, credentialExpiresAt: credential.expiresAt)
            // The per-user view lists only connections whose credential is per user.
            if connection.tracksUsers {
                connection.activity.recordUser(caller.userKey, .init(state: "live", at: now, credentialExpiresAt: credential.expiresAt))
            }
        }
    }

    private func buildUpstream(
        _ request: Request, target: ProxyTarget, connection: Connection, credential: Credential, kept: ByteBuffer?, contentLength: Int?
    ) throws(GatewayError) -> UpstreamRequest {
        guard let origin = connection.upstreamOrigin else { throw GatewayError.internalError(connection.name) }
        var path = origin.basePath
        path += target.remainder
        if path.isEmpty { path = "/" }
        if let query = target.query { path += "?"; path += query }
        let body: UpstreamRequest.Body
        if let kept {
            body = .bytes(kept)
        } else if let contentLength {
            body = contentLength > 0 ? .stream(LimitedBody(base: request.body, limit: connection.maxRequestBody), length: contentLength) : .none
        } else if request.headers[.transferEncoding] != nil {
            body = .stream(LimitedBody(base: request.body, limit: connection.maxRequestBody), length: nil)
        } else {
            body = .none
        }
        return UpstreamRequest(
            origin: origin, method: HTTPMethod(rawValue: request.method.rawValue), target: path,
            headers: HeaderFilter.upstreamHeaders(from: request.headers, inject: credential.headers), body: body)
    }

    /// Reads and drops an answer that is about to be replaced by a replay.
    private func discard(_ response: HTTPClientResponse) async {
        _ = try? await response.body.collect(upTo: 1 << 20)
    }

    /// The plugin's credential (through the cache), or the gateway error the agent sees.
    private func obtain(
        _ connection: Connection, caller: CallerIdentity, scopes: Set<String>?, reason: CredentialReason, mcpBody: ByteBuffer?
    ) async throws(GatewayError) -> Credential {
        let now = clock.now()
        switch await CredentialResolver.credential(for: connection, caller: caller, scopes: scopes, reason: reason) {
        case .inject(let c):
            return c
        case .interactionRequired(let interaction):
            connection.activity.recordFailure(at: now, code: "interaction_required", message: "the user must consent first", upstream: false)
            connection.activity.recordUser(caller.userKey, .init(state: "consent_required", at: now, interactionURI: interaction.uri))
            var e = GatewayError(code: "interaction_required", status: .unauthorized, message: interaction.message, connection: connection.name)
            e.extra["interaction_uri"] = interaction.uri
            e.headers[.wwwAuthenticate] = "Bearer error=\"interaction_required\""
            if let mcpBody, let rpc = JSONRPCPeek(mcpBody) { e.jsonRPCID = rpc.idJSON }
            throw e
        case .failed(let failure):
            connection.activity.recordFailure(at: now, code: failure.code, message: failure.message, upstream: false)
            connection.activity.recordUser(caller.userKey, .init(state: "error", at: now, error: failure.code))
            var e = GatewayError(code: failure.code, status: HTTPResponse.Status(code: failure.httpStatus), message: failure.message, connection: connection.name)
            if let detail = failure.detail { e.extra["detail"] = detail }
            if let retry = failure.retryAfter { e.headers[.retryAfter] = String(retry) }
            throw e
        }
    }

    func checkHeaderLimits(_ fields: HTTPFields, settings: GatewaySettings) throws(GatewayError) {
        if fields.count > settings.maxHeaderCount {
            throw GatewayError.headersTooLarge("more than \(settings.maxHeaderCount) header fields")
        }
        var total = 0
        for f in fields { total += f.name.rawName.utf8.count + f.value.utf8.count }
        if total > settings.maxHeaderBytes {
            throw GatewayError.headersTooLarge("request headers exceed \(settings.maxHeaderBytes) bytes")
        }
    }

    /// One line per proxied request; never a token, never the query string.
    /// The access log's line for one request. `eventLoop`: answered by the event-loop path
    /// (``ProxyFastPathHandler``), shown as `via=event-loop`.
    func logLine(
        connection: String, method: HTTPRequest.Method, status: Int, started: ContinuousClock.Instant, bytes: Int? = nil, error: String? = nil,
        eventLoop: Bool = false
    ) {
        guard logger.logLevel <= .info else { return }  // build nothing when the line is filtered out
        let elapsed = ContinuousClock.now - started
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        var metadata: Logger.Metadata = [
            "connection": "\(connection)", "method": "\(method.rawValue)", "status": "\(status)",
            "duration_ms": "\(String(format: "%.2f", ms))",
        ]
        if let bytes { metadata["bytes"] = "\(bytes)" }
        if let error { metadata["error"] = "\(error)" }
        if eventLoop { metadata["via"] = "event-loop" }
        logger.info("proxied", metadata: metadata)
    }
}

extension Duration {
    /// Nanoseconds, saturating at Int64.max (NIO and AsyncHTTPClient take Int64 nanoseconds).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        if seconds >= Int64.max / 1_000_000_000 - 1 { return Int64.max }
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
