import HTTPTypes
import NIOCore
import NIOHTTP1
import SwitchboardJSON
import Tracing
import Upstream

/// A proxied call's spans (OpenTelemetry HTTP and MCP semantic conventions): a server span from
/// admission to the answer, continuing the caller's `traceparent`; child spans where there is
/// work — the caller's verification, each credential the async driver asks for (with the
/// plugin's token exchanges under it, as the HTTP client's own client spans) and each upstream
/// request it sends — and the trace carried on to the upstream (`traceparent`, `params._meta`).
/// A warm call the event-loop driver answers alone is its server span only: on these cores a
/// span costs swift-otel about as much as the rest of such a call (bench/run's tracing cells).
/// Only when the process has a tracer (``ProxyHandler/tracing``); without one no span, no
/// header and no work.
enum CallTracing {
    /// Starts the call's server span; ended by ``end(_:status:error:)`` when the call is recorded.
    static func start(_ exchange: ProxyExchange, headers: HTTPHeaders) {
        let parent = parent(of: headers, using: NIOHeadersCarrier())
        let route = exchange.target.prefix == .mcp ? "/mcp/{name}" : "/rest/{name}/{path}"
        // A call the gateway's own /mcp endpoint sends is part of that endpoint's server span.
        let span = startSpan("\(exchange.method.rawValue) \(route)", context: parent, ofKind: exchange.driver == .aggregate ? .client : .server)
        span.updateAttributes { a in
            a["http.request.method"] = exchange.method.rawValue
            a["http.route"] = route
            a["switchboard.connection"] = exchange.connection.name
            a["switchboard.strategy"] = exchange.connection.plan.strategy?.pluginID ?? "none"
            if exchange.target.prefix == .mcp {
                a["mcp.session.id"] = headers.first(name: "mcp-session-id")
                a["mcp.protocol.version"] = headers.first(name: "mcp-protocol-version")
            }
        }
        exchange.span = span
    }

    /// The context a request's span continues: the caller's `traceparent` when it sent one,
    /// else the current one. (Only when there is one: extracting nothing clears the current
    /// span's context, and a call the /mcp endpoint sends carries that endpoint's span as the
    /// current one.)
    static func parent<Carrier, E: Extractor>(of headers: Carrier, using extractor: E) -> InstrumentationContext where E.Carrier == Carrier {
        var parent = InstrumentationContext.current ?? .topLevel
        if extractor.extract(key: "traceparent", from: headers) != nil {
            InstrumentationSystem.instrument.extract(headers, into: &parent, using: extractor)
        }
        return parent
    }

    /// What an MCP call asks, on its span (the facts the governance step read, else the body
    /// read now); once per call, though a handed-over call passes both drivers.
    static func describe(_ exchange: ProxyExchange, mcpBody: ByteBuffer?) {
        guard let span = exchange.span, exchange.target.prefix == .mcp, !exchange.spanDescribed else { return }
        exchange.spanDescribed = true
        var method = exchange.facts?.mcp?.method
        var tool = exchange.facts?.mcp?.tool
        var id = exchange.facts?.rpcID
        if exchange.facts == nil, let mcpBody, let peek = JSONRPCPeek(Array(mcpBody.readableBytesView)) {
            (method, id) = (peek.method, peek.id)
            tool = peek.method == "tools/call" || peek.method == "prompts/get" ? peek.name : nil
        }
        guard let method, !method.isEmpty else { return }
        span.operationName = tool.map { "\(method) \($0)" } ?? method
        span.updateAttributes { a in
            a["mcp.method.name"] = method
            if let tool { a[method == "prompts/get" ? "gen_ai.prompt.name" : "gen_ai.tool.name"] = tool }
            switch id {
            case .string(let s)?: a["jsonrpc.request.id"] = s
            case .number(let n)?: a["jsonrpc.request.id"] = n == n.rounded() ? String(Int(n)) : String(n)
            default: break
            }
        }
    }

    /// Ends the call's span with its outcome (``CallRecorder/log(_:status:bytes:error:)``, once per call).
    static func end(_ exchange: ProxyExchange, status: Int, error: String?) {
        guard let span = exchange.span else { return }
        exchange.span = nil
        span.updateAttributes { a in
            a["http.response.status_code"] = status
            a["switchboard.driver"] = exchange.driver.rawValue
            if exchange.stepUps > 0 { a["switchboard.step_ups"] = exchange.stepUps }
            if let error { a["error.type"] = error } else if status >= 500 { a["error.type"] = String(status) }
        }
        if error != nil || status >= 500 { span.setStatus(.init(code: .error)) }
        span.end()
    }

    /// Runs `body` in a child span of the call (no span when the call has none).
    static func child<T, Failure: Error>(
        _ name: String, of exchange: ProxyExchange, kind: SpanKind = .internal, _ body: (_ span: (any Span)?) async throws(Failure) -> T
    ) async throws(Failure) -> T {
        guard let parent = exchange.span else { return try await body(nil) }
        do {
            return try await withSpan(name, context: parent.context, ofKind: kind) { span in try await body(span) }
        } catch {
            throw error as! Failure  // withSpan only rethrows what `body` threw
        }
    }

    /// The upstream request carries `context` on: `traceparent` (and `tracestate`) replacing any
    /// the caller sent, and for MCP the same in `params._meta` (``withTraceMeta(_:headers:)``).
    static func propagate(_ context: InstrumentationContext, into upstream: inout UpstreamRequest, mcp: Bool) {
        InstrumentationSystem.instrument.inject(context, into: &upstream.headers, using: NIOHeadersCarrier())
        if mcp, case .bytes(let sent) = upstream.body, let traced = withTraceMeta(sent, headers: upstream.headers) {
            upstream.body = .bytes(traced)
        }
    }

    /// An MCP request's body with `headers`' trace context also in `params._meta` (`traceparent`,
    /// `tracestate`), where the MCP semantic conventions carry it for servers that read it there.
    /// Inserted as bytes after `params`' `{`: the rest of the body is sent as the caller wrote it
    /// (no parse and re-encode, which could change numbers). Nil when there is nothing to do: no
    /// trace context, not one JSON-RPC request with an object `params`, or a `_meta` already there.
    static func withTraceMeta(_ body: ByteBuffer, headers: HTTPHeaders) -> ByteBuffer? {
        guard let traceparent = headers.first(name: "traceparent") else { return nil }
        let bytes = Array(body.readableBytesView)
        guard let peek = JSONRPCPeek(bytes), !peek.ambiguous, peek.method != nil, let start = peek.paramsStart, !peek.paramsHasMeta else { return nil }
        var meta: [String: JSONValue] = ["traceparent": .string(traceparent)]
        if let state = headers.first(name: "tracestate") { meta["tracestate"] = .string(state) }
        var rest = start + 1
        while rest < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[rest]) { rest += 1 }
        let empty = rest < bytes.count && bytes[rest] == UInt8(ascii: "}")
        var out = ByteBuffer()
        out.reserveCapacity(bytes.count + 128)
        out.writeBytes(bytes[...start])
        out.writeString("\"_meta\":")
        out.writeBytes(JSONValue.object(meta).encoded())
        if !empty { out.writeString(",") }
        out.writeBytes(bytes[(start + 1)...])
        return out
    }

    /// `trace_id` and `span_id` of a span, for a log line (read from its W3C form).
    static func logIDs(_ span: any Span) -> (traceID: String, spanID: String)? {
        var headers = HTTPHeaders()
        InstrumentationSystem.instrument.inject(span.context, into: &headers, using: NIOHeadersCarrier())
        let parts = headers.first(name: "traceparent")?.split(separator: "-") ?? []
        guard parts.count == 4 else { return nil }
        return (String(parts[1]), String(parts[2]))
    }
}

/// W3C trace context in and out of NIO's headers.
struct NIOHeadersCarrier: Extractor, Injector {
    func extract(key: String, from carrier: HTTPHeaders) -> String? { carrier.first(name: key) }
    func inject(_ value: String, forKey key: String, into carrier: inout HTTPHeaders) { carrier.replaceOrAdd(name: key, value: value) }
}

/// W3C trace context from swift-http-types' fields (Hummingbird's requests).
struct HTTPFieldsCarrier: Extractor {
    func extract(key: String, from carrier: HTTPFields) -> String? { HTTPField.Name(key).flatMap { carrier[$0] } }
}
