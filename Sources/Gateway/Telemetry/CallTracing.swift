import HTTPTypes
import NIOCore
import NIOHTTP1
import OTLPTracing
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
    /// The process's tracer, read once: `startSpan` would look it up behind a lock per call.
    /// (Read only once tracing is known to be on, after the process bootstrapped its tracer.)
    static let tracer: any Tracer = InstrumentationSystem.tracer

    /// Starts the call's server span; ended by ``end(_:status:error:)`` when the call is recorded.
    /// Its attributes are gathered in the exchange and handed over once, at the end.
    static func start(_ exchange: ProxyExchange, headers: HTTPHeaders) {
        // The four headers the span reads, in one pass over the head.
        var trace = TraceHeaders()
        var session: String?, version: String?
        for (name, value) in headers {
            switch name.utf8.count {
            case 11 where ASCIICase.equals(name, "traceparent"): trace.traceparent = trace.traceparent ?? value
            case 10 where ASCIICase.equals(name, "tracestate"): trace.tracestate = trace.tracestate ?? value
            case 14 where ASCIICase.equals(name, "mcp-session-id"): session = session ?? value
            case 20 where ASCIICase.equals(name, "mcp-protocol-version"): version = version ?? value
            default: break
            }
        }
        let parent = parent(of: trace, using: TraceHeaders.Carrier())
        let route = exchange.target.prefix == .mcp ? "/mcp/{name}" : "/rest/{name}/{path}"
        // A call the gateway's own /mcp endpoint sends is part of that endpoint's server span.
        let span = tracer.startAnySpan(
            "\(exchange.method.rawValue) \(route)", context: parent, ofKind: exchange.driver == .aggregate ? .client : .server)
        exchange.span = span
        guard span.isRecording else { return }
        var a: [(String, OTLPValue)] = []
        a.reserveCapacity(16)
        a.append(("http.request.method", .string(exchange.method.rawValue)))
        a.append(("http.route", .string(route)))
        a.append(("switchboard.connection", .string(exchange.connection.name)))
        a.append(("switchboard.strategy", .string(exchange.connection.plan.strategy?.pluginID ?? "none")))
        if exchange.target.prefix == .mcp {
            if let session { a.append(("mcp.session.id", .string(session))) }
            if let version { a.append(("mcp.protocol.version", .string(version))) }
        }
        exchange.spanAttributes = a
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
        if exchange.facts == nil, let mcpBody, let peek = JSONRPCPeek(mcpBody) {
            (method, id) = (peek.method, peek.id)
            tool = peek.method == "tools/call" || peek.method == "prompts/get" ? peek.name : nil
            exchange.traceMetaAt = MetaInsertion(peek, bodySize: mcpBody.readableBytes)
        }
        guard let method, !method.isEmpty, span.isRecording else { return }
        span.operationName = tool.map { "\(method) \($0)" } ?? method
        exchange.spanAttributes.append(("mcp.method.name", .string(method)))
        if let tool { exchange.spanAttributes.append((method == "prompts/get" ? "gen_ai.prompt.name" : "gen_ai.tool.name", .string(tool))) }
        switch id {
        case .string(let s)?: exchange.spanAttributes.append(("jsonrpc.request.id", .string(s)))
        case .number(let n)?: exchange.spanAttributes.append(("jsonrpc.request.id", .string(n == n.rounded() ? String(Int(n)) : String(n))))
        default: break
        }
    }

    /// Ends the call's span with its outcome (``CallRecorder/log(_:status:bytes:error:)``, once per call).
    static func end(_ exchange: ProxyExchange, status: Int, error: String?) {
        guard let span = exchange.span else { return }
        exchange.span = nil
        guard span.isRecording else { return span.end() }
        var a = exchange.spanAttributes
        exchange.spanAttributes = []
        a.append(("http.response.status_code", .int(Int64(status))))
        a.append(("switchboard.driver", .string(exchange.driver.rawValue)))
        if exchange.stepUps > 0 { a.append(("switchboard.step_ups", .int(Int64(exchange.stepUps)))) }
        if let error { a.append(("error.type", .string(error))) } else if status >= 500 { a.append(("error.type", .string(String(status)))) }
        if error != nil || status >= 500 { span.setStatus(.init(code: .error)) }
        // Our tracer takes the list as it is; any other, as span attributes.
        if let otlp = span as? OTLPSpan { return otlp.end(adding: a) }
        span.updateAttributes { attributes in for (key, value) in a { attributes[key] = value.spanAttribute } }
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
    /// the caller sent, and for MCP the same in `params._meta` (``withTraceMeta(_:traceparent:tracestate:)``).
    static func propagate(_ context: InstrumentationContext, into upstream: inout UpstreamRequest, of exchange: ProxyExchange) {
        var trace = TraceHeaders()
        tracer.inject(context, into: &trace, using: TraceHeaders.Carrier())
        guard let traceparent = trace.traceparent else { return }
        upstream.headers.replaceOrAdd(name: "traceparent", value: traceparent)
        if let state = trace.tracestate { upstream.headers.replaceOrAdd(name: "tracestate", value: state) }
        guard exchange.target.prefix == .mcp, case .bytes(let sent) = upstream.body else { return }
        // Where describe's read of this body put `_meta` (the same body: no second read).
        let known = exchange.traceMetaAt.flatMap { $0.bodySize == sent.readableBytes ? $0 : nil }
        if let traced = withTraceMeta(sent, traceparent: traceparent, tracestate: trace.tracestate, known: known) {
            upstream.body = .bytes(traced)
        }
    }

    /// Where an MCP body's `params` object opens, for `_meta` to go in (nil: it cannot).
    struct MetaInsertion {
        let paramsStart: Int?
        let bodySize: Int

        init(_ peek: JSONRPCPeek, bodySize: Int) {
            paramsStart = !peek.ambiguous && peek.method != nil && !peek.paramsHasMeta ? peek.paramsStart : nil
            self.bodySize = bodySize
        }
    }

    /// An MCP request's body with its trace context also in `params._meta` (`traceparent`,
    /// `tracestate`), where the MCP semantic conventions carry it for servers that read it there.
    /// Inserted as bytes after `params`' `{`: the rest of the body is sent as the caller wrote it
    /// (no parse and re-encode, which could change numbers). Nil when there is nothing to do:
    /// not one JSON-RPC request with an object `params`, or a `_meta` already there.
    static func withTraceMeta(_ body: ByteBuffer, traceparent: String, tracestate: String?, known: MetaInsertion? = nil) -> ByteBuffer? {
        let found: Int?? = known.map(\.paramsStart)
        guard let start = found ?? JSONRPCPeek(body).flatMap({ MetaInsertion($0, bodySize: body.readableBytes).paramsStart })
        else { return nil }
        let view = body.readableBytesView
        var rest = view.startIndex + start + 1
        while rest < view.endIndex, [0x20, 0x0A, 0x0D, 0x09].contains(view[rest]) { rest += 1 }
        let empty = rest < view.endIndex && view[rest] == UInt8(ascii: "}")
        var out = ByteBuffer()
        out.reserveCapacity(body.readableBytes + 160)
        out.writeBytes(view[view.startIndex...(view.startIndex + start)])
        out.writeStaticString("\"_meta\":{\"traceparent\":")
        // A W3C traceparent is hex digits and dashes: nothing to escape (checked, not assumed).
        if traceparent.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) {
            out.writeStaticString("\"")
            out.writeString(traceparent)
            out.writeStaticString("\"")
        } else {
            out.writeBytes(JSONValue.string(traceparent).encoded())
        }
        if let tracestate {
            out.writeStaticString(",\"tracestate\":")
            out.writeBytes(JSONValue.string(tracestate).encoded())
        }
        out.writeStaticString("}")
        if !empty { out.writeStaticString(",") }
        out.writeBytes(view[(view.startIndex + start + 1)...])
        return out
    }

    /// `trace_id` and `span_id` of a span, for a log line: read off our tracer's span, else from
    /// the W3C form any other tracer writes.
    static func logIDs(_ span: any Span) -> (traceID: String, spanID: String)? {
        if let ids = TraceLogMetadata.ids(of: span) { return ids }
        var trace = TraceHeaders()
        tracer.inject(span.context, into: &trace, using: TraceHeaders.Carrier())
        let parts = trace.traceparent?.split(separator: "-") ?? []
        guard parts.count == 4 else { return nil }
        return (String(parts[1]), String(parts[2]))
    }
}

/// The two W3C trace context headers as an instrument writes them (no header list to search).
struct TraceHeaders {
    var traceparent: String?
    var tracestate: String?

    struct Carrier: Injector, Extractor {
        func extract(key: String, from carrier: TraceHeaders) -> String? {
            switch key {
            case "traceparent": carrier.traceparent
            case "tracestate": carrier.tracestate
            default: nil
            }
        }

        func inject(_ value: String, forKey key: String, into carrier: inout TraceHeaders) {
            switch key {
            case "traceparent": carrier.traceparent = value
            case "tracestate": carrier.tracestate = value
            default: break
            }
        }
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
