import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import PluginAPI
import Tracing
import Upstream

/// The async driver of the proxy pipeline (`/mcp/{name}`, `/rest/{name}/…`): admission →
/// inbound identity → plugin credential → upstream call → answer policy → streamed answer.
/// The rules of each step live in `Pipeline/` and are shared with the event-loop driver
/// (``ProxyFastPath``), which hands a call over here as it is (``takeOver``).
struct ProxyHandler: Sendable {
    let holder: RegistryHolder
    let upstreamClient: UpstreamClient
    let logger: Logger
    let clock: any GatewayClock
    /// The audit trail (one record per call), when on.
    var audit: AuditLog? = nil
    /// Whether the process traces (a tracer was bootstrapped): each call gets its spans.
    var tracing = false

    /// A call Hummingbird routed here: admitted under the registry generation it keeps to the end.
    func handle(_ request: Request, target: ProxyTarget) async -> Response {
        let registry = holder.registry
        let exchange: ProxyExchange
        let contentLength = request.headers[.contentLength].flatMap { Int($0) }
        do {
            let connection = try Admission.route(target, in: registry, method: request.method)
            exchange = ProxyExchange(registry: registry, target: target, connection: connection, method: request.method, driver: .async)
            var bytes = 0
            for f in request.headers { bytes += f.name.rawName.utf8.count + f.value.utf8.count }
            do {
                try Admission.checkHeaders(count: request.headers.count, bytes: bytes, settings: registry.settings)
                try Admission.checkBody(contentLength: contentLength, connection: connection)
            } catch {
                recorder.log(exchange, status: Int(error.status.code), error: error.code)
                return error.response()
            }
        } catch {
            return error.response()
        }
        let chunked = request.headers[.transferEncoding] != nil
        // Into the proxy's one wire type (NIO's, as the event-loop driver has it) at the edge.
        var headers = HTTPHeaders()
        headers.reserveCapacity(request.headers.count)
        for field in request.headers { headers.add(name: field.name.rawName, value: field.value) }
        return await run(exchange, headers: headers, body: .incoming(request.body, contentLength: contentLength, chunked: chunked), prefetched: nil)
    }

    /// A call the event-loop driver admitted (and perhaps authenticated, and perhaps already
    /// sent: `prefetched` is the upstream's answer to it, standing for the first upstream
    /// call), handed over whole: no second routing, authentication or registry read.
    func takeOver(_ exchange: ProxyExchange, headers: HTTPHeaders, body: ByteBuffer?, prefetched: HTTPClientResponse?) async -> Response {
        await run(exchange, headers: headers, body: .kept(body), prefetched: prefetched)
    }

    /// A message the gateway itself sends to an MCP connection for a verified caller (the
    /// `/mcp` endpoint's fan-out and routed calls): admitted by the same rules as a call to
    /// `/mcp/{name}`, under the registry generation the caller's request holds, and run by this
    /// driver — the same credential, refresh, step-up, consent, recording and access log.
    func callMCP(
        _ connection: Connection, in registry: Registry, for caller: CallerIdentity, method: HTTPRequest.Method, headers: HTTPHeaders, body: ByteBuffer?
    ) async -> Response {
        let route = connection.descriptor.route ?? ("/mcp/" + connection.name)
        let target = ProxyTarget(prefix: .mcp, segment: Substring(route.dropFirst("/mcp/".count)), remainder: "", query: nil)
        let exchange: ProxyExchange
        do {
            exchange = ProxyExchange(
                registry: registry, target: target, connection: try Admission.route(target, in: registry, method: method), method: method, driver: .aggregate)
        } catch {
            return error.response()
        }
        exchange.caller = caller
        return await run(exchange, headers: headers, body: .kept(body), prefetched: nil)
    }

    /// The request body as the driver has it.
    enum InboundBody {
        /// Read whole already (the event-loop driver reads the small bodies it takes).
        case kept(ByteBuffer?)
        /// Still arriving.
        case incoming(RequestBody, contentLength: Int?, chunked: Bool)
    }

    private func run(_ exchange: ProxyExchange, headers: HTTPHeaders, body: InboundBody, prefetched: HTTPClientResponse?) async -> Response {
        if tracing, exchange.span == nil { CallTracing.start(exchange, headers: headers) }
        do {
            return try await forward(exchange, headers: headers, body: body, prefetched: prefetched)
        } catch {
            recorder.failed(exchange, error: error)
            return error.response()
        }
    }

    private func forward(_ exchange: ProxyExchange, headers: HTTPHeaders, body: InboundBody, prefetched: HTTPClientResponse?) async throws(GatewayError) -> Response {
        let connection = exchange.connection
        let settings = exchange.registry.settings
        let caller: CallerIdentity
        if let known = exchange.caller {
            caller = known
        } else {
            caller = try await CallTracing.child("authenticate", of: exchange) { _ throws(GatewayError) in
                try await exchange.registry.authenticator.authenticate(Admission.authorization(headers))
            }
            exchange.caller = caller
        }

        // A request can be replayed (token refresh, scope step-up) when its plugin caches
        // credentials and its body is small enough to keep; everything else streams once.
        // Small bodies with a known length are read first (one buffer upstream, resendable by
        // the HTTP client on a fresh connection, replayable); larger ones stream. A chunked body
        // is read ahead as far (``ChunkedBodyReadAhead``): one over the limit by then is refused
        // before the upstream hears of it.
        var kept: ByteBuffer?
        var inbound = body
        let hasBody: Bool
        switch inbound {
        case .kept(let body):
            kept = body
            hasBody = (body?.readableBytes ?? 0) > 0
        case .incoming(let body, let contentLength, let chunked):
            if let contentLength, Admission.keepsBody(contentLength: contentLength, settings: settings) {
                do { kept = try await body.collect(upTo: contentLength) } catch {
                    throw GatewayError.invalidPath("the request body could not be read", connection: connection.name)
                }
            } else if contentLength == nil, chunked {
                let outcome: ChunkedBodyReadAhead.Outcome
                do {
                    outcome = try await ChunkedBodyReadAhead.read(
                        body, upTo: min(settings.maxReplayBody, connection.maxRequestBody), limit: connection.maxRequestBody)
                } catch {
                    throw GatewayError.invalidPath("the request body could not be read", connection: connection.name)
                }
                switch outcome {
                case .whole(let whole): kept = whole
                case .tooLarge: throw GatewayError.payloadTooLarge(limit: connection.maxRequestBody, connection: connection.name)
                case .started(let rest): inbound = .incoming(rest, contentLength: nil, chunked: true)
                }
            }
            hasBody = (contentLength ?? 0) > 0 || chunked
        }
        let policy = exchange.answerPolicy(body: exchange.target.prefix == .mcp ? kept : nil)
        let canReplay = policy.caching && (kept != nil || !hasBody)
        let mcpBody = exchange.target.prefix == .mcp ? kept : nil

        // Authorization, then rate limits, before any credential is fetched (Pipeline/Governance).
        let check: PolicyCheck?
        var verdict = Governance.judge(exchange, caller: caller, body: kept, unreadBody: hasBody && kept == nil)
        if case .countShared(let c) = verdict { verdict = await Governance.countShared(exchange, caller: caller, check: c) }
        switch verdict {
        case .pass(let c), .countShared(let c): check = c
        case .refuse(let refusal):
            let (response, error) = Governance.answer(refusal, exchange: exchange)
            recorder.log(exchange, status: Int(response.status.code), error: error)
            return response
        }
        if audit != nil, exchange.target.prefix == .mcp { exchange.auditBody = kept }
        CallTracing.describe(exchange, mcpBody: mcpBody)

        var scopes = connection.scopes(for: caller.userKey)
        var credential: Credential
        if prefetched != nil, let sent = exchange.credential {
            credential = sent  // what the event-loop driver injected into the answer it hands over
        } else {
            credential = try await obtain(exchange, caller: caller, scopes: scopes, reason: .initial, mcpBody: mcpBody)
        }
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
                let replay = refreshed ? "refresh" : stepUps > 0 ? "step_up" : nil
                response = try await CallTracing.child("upstream", of: exchange, kind: .client) { span throws(GatewayError) in
                    var upstream = try buildUpstream(exchange, headers: headers, inbound: inbound, credential: credential, kept: kept)
                    if let span {
                        CallTracing.propagate(span.context, into: &upstream, of: exchange)
                        span.attributes["http.request.method"] = exchange.method.rawValue
                        span.attributes["server.address"] = connection.upstreamOrigin?.host
                        if let replay { span.attributes["switchboard.replay"] = replay }
                    }
                    do {
                        // No logger handed to the client: at trace level it would print the injected credential.
                        let response = try await upstreamClient.execute(upstream, timeout: connection.responseTimeout)
                        span?.attributes["http.response.status_code"] = Int(response.status.code)
                        return response
                    } catch {
                        throw UpstreamErrorMapping.map(error, connection: connection)
                    }
                }
            }
            exchange.credential = credential
            let status = Int(response.status.code)
            var answerBody: AnswerBody?
            if canReplay, let strategy = connection.strategy {
                var challenge: ScopeChallenge?
                switch policy.judge(
                    status: status, wwwAuthenticate: response.headers.first(name: "www-authenticate"),
                    contentType: response.headers.first(name: "content-type"), refreshed: refreshed)
                {
                case .pass:
                    break
                case .refresh:
                    // The credential was refused (expired, revoked): get a fresh one, replay once.
                    refreshed = true
                    await discard(response.body)
                    logger.info("upstream refused the credential; refreshing", metadata: ["connection": "\(connection.name)"])
                    credential = try await obtain(exchange, caller: caller, scopes: scopes, reason: .refresh, mcpBody: mcpBody)
                    continue
                case .stepUp(let c):
                    challenge = c
                case .readBody:
                    if let buffered = try? await response.body.collect(upTo: settings.maxReplayBody) {
                        answerBody = .buffered(buffered)
                        challenge = AnswerPolicy.challenge(inJSON: buffered)
                    }
                case .readFirstEvent:
                    let started = await StartedStream.read(response.body, upTo: settings.maxReplayBody)
                    answerBody = .started(started)
                    challenge = AnswerPolicy.challenge(inFirstEvent: started.prefix)
                }
                if let challenge, stepUps < 2, case .possible(let wanted) = strategy.stepUp(for: challenge, held: credential) {
                    stepUps += 1
                    exchange.stepUps = stepUps
                    switch answerBody {
                    case nil: await discard(response.body)
                    case .started(let started)?: await started.discardRest()
                    default: break
                    }
                    connection.activity.recordStepUp()
                    logger.info("scope step-up", metadata: [
                        "connection": "\(connection.name)", "scopes": "\(wanted.sorted().joined(separator: " "))", "step": "\(stepUps)",
                    ])
                    scopes = wanted
                    let held = credential.scopes
                    exchange.span?.addEvent(SpanEvent(name: "step-up", attributes: ["switchboard.scopes": .string(wanted.sorted().joined(separator: " "))]))
                    credential = try await obtain(exchange, caller: caller, scopes: wanted, reason: .stepUp, mcpBody: mcpBody)
                    widened.formUnion((credential.scopes.isEmpty ? wanted : credential.scopes).subtracting(held))
                    connection.remember(scopes: credential.scopes.isEmpty ? wanted : credential.scopes, for: caller.userKey)
                    continue
                }
            }
            if let check, check.filtersToolList, status == 200 {
                // The tools this caller may not call are not listed (the answer is read whole for that).
                var whole: ByteBuffer
                switch answerBody {
                case .buffered(let b)?: whole = b
                case .started(let started)?:
                    whole = started.prefix
                    while whole.readableBytes <= settings.maxReplayBody, let more = try? await started.next() { var m = more; whole.writeBuffer(&m) }
                case nil: whole = (try? await response.body.collect(upTo: settings.maxReplayBody)) ?? ByteBuffer()
                }
                let filtered = check.filteredToolList(whole, contentType: response.headers.first(name: "content-type"))
                return answer(response, status: status, body: .buffered(filtered), exchange: exchange, widened: widened)
            }
            if let answerBody {
                return answer(response, status: status, body: answerBody, exchange: exchange, widened: widened)
            }
            // A small answer of known length (not an event stream) is read whole and sent as one
            // buffer: cheaper than a streamed body, and it delays nothing (its length is known).
            // (Not for HEAD: its Content-Length describes a body that is not sent.)
            if exchange.method != .head, let length = response.headers.first(name: "content-length").flatMap(Int.init), length <= UpstreamResponseStart.wholeLimit,
               !AnswerPolicy.isEventStream(response.headers.first(name: "content-type")),
               let whole = try? await response.body.collect(upTo: length)
            {
                return answer(response, status: status, body: .buffered(whole), exchange: exchange, widened: widened)
            }
            return answer(response, status: status, body: .started(.unread(response.body)), exchange: exchange, widened: widened)
        }
    }

    enum AnswerBody {
        /// Streamed back as it comes (after what was read to judge it, if anything).
        case started(StartedStream)
        case buffered(ByteBuffer)
    }

    /// Records the outcome and streams (or returns the already-read) upstream answer.
    private func answer(_ response: HTTPClientResponse, status: Int, body: AnswerBody, exchange: ProxyExchange, widened: Set<String>) -> Response {
        let recorder = self.recorder
        recorder.answered(exchange, status: status)
        let responseStatus = HTTPResponse.Status(code: status, reasonPhrase: response.status.reasonPhrase)
        switch body {
        case .buffered(let buffer):
            recorder.log(exchange, status: status, bytes: buffer.readableBytes)
            let headers = ResponseShaper.fields(from: response.headers, contentLength: buffer.readableBytes, widened: widened)
            return Response(status: responseStatus, headers: headers, body: ResponseBody(byteBuffer: buffer))
        case .started(let stream):
            // (Not for HEAD: its Content-Length describes a body that is not sent.)
            let length = exchange.method == .head ? nil : response.headers.first(name: "content-length").flatMap { Int($0) }
            let headers = ResponseShaper.fields(from: response.headers, contentLength: length, widened: widened)
            let streamed = ResponseBody(contentLength: length) { writer in
                var bytes = stream.prefix.readableBytes
                do {
                    if stream.prefix.readableBytes > 0 { try await writer.write(stream.prefix) }
                    while let chunk = try await stream.next() {
                        bytes += chunk.readableBytes
                        try await writer.write(chunk)
                    }
                    try await writer.finish(nil)
                    recorder.log(exchange, status: status, bytes: bytes)
                } catch {
                    recorder.log(exchange, status: status, bytes: bytes, error: "stream_interrupted")
                    throw error
                }
            }
            return Response(status: responseStatus, headers: headers, body: streamed)
        }
    }

    private func buildUpstream(
        _ exchange: ProxyExchange, headers: HTTPHeaders, inbound: InboundBody, credential: Credential, kept: ByteBuffer?
    ) throws(GatewayError) -> UpstreamRequest {
        let connection = exchange.connection
        guard let origin = connection.upstreamOrigin, let path = exchange.upstreamTarget else { throw GatewayError.internalError(connection.name) }
        let body: UpstreamRequest.Body
        if let kept {
            body = .bytes(kept)
        } else if case .incoming(let incoming, let contentLength, let chunked) = inbound {
            if let contentLength {
                body = contentLength > 0 ? .stream(LimitedBody(base: incoming, limit: connection.maxRequestBody), length: contentLength) : .none
            } else if chunked {
                body = .stream(LimitedBody(base: incoming, limit: connection.maxRequestBody), length: nil)
            } else {
                body = .none
            }
        } else {
            body = .none
        }
        return UpstreamRequest(
            origin: origin, method: HTTPMethod(rawValue: exchange.method.rawValue), target: path,
            headers: HeaderFilter.upstreamHeaders(from: headers, inject: credential.headers), body: body)
    }

    /// Reads and drops an answer that is about to be replaced by a replay.
    private func discard(_ body: HTTPClientResponse.Body) async {
        _ = try? await body.collect(upTo: 1 << 20)
    }

    /// The plugin's credential (through the cache), or the gateway error the agent sees.
    private func obtain(
        _ exchange: ProxyExchange, caller: CallerIdentity, scopes: Set<String>?, reason: CredentialReason, mcpBody: ByteBuffer?
    ) async throws(GatewayError) -> Credential {
        let connection = exchange.connection
        let now = clock.now()
        let outcome = await CallTracing.child("credential", of: exchange) { span in
            span?.attributes["switchboard.credential.reason"] = "\(reason)"
            return await CredentialResolver.credential(for: connection, caller: caller, scopes: scopes, reason: reason, span: span)
        }
        switch outcome {
        case .inject(let c):
            return c
        case .interactionRequired(let interaction):
            connection.activity.recordFailure(at: now, code: "interaction_required", message: "the user must consent first", upstream: false)
            connection.activity.recordUser(caller.userKey, .init(state: "consent_required", at: now, interactionURI: interaction.uri))
            var e = GatewayError(code: "interaction_required", status: .unauthorized, message: interaction.message, connection: connection.name)
            e.extra["interaction_uri"] = interaction.uri
            e.headers[.wwwAuthenticate] = "Bearer error=\"interaction_required\""
            if let mcpBody { e.jsonRPCID = BodyScan.idJSON(of: mcpBody) }
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

    /// The last step's record of a call (activity and access log), shared with the event-loop driver.
    var recorder: CallRecorder { CallRecorder(logger: logger, clock: clock, audit: audit) }
}
