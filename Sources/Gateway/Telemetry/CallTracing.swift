import HTTPTypes
import NIOCore
import NIOHTTP1
import SwitchboardJSON
import Tracing

/// A proxied call's spans (OpenTelemetry HTTP and MCP semantic conventions): a server span from
/// admission to the answer, continuing the caller's `traceparent`; child spans for the caller's
/// verification, each credential (with the plugin's token exchanges under it, as the HTTP
/// client's own client spans) and each upstream request, which carries the trace on in its
/// `traceparent`. Only when the process has a tracer (``ProxyHandler/tracing``); without one
/// no span, no header and no work.
enum CallTracing {
    /// Starts the call's server span; ended by ``end(_:status:error:)`` when the call is recorded.
    static func start(_ exchange: ProxyExchange, headers: HTTPHeaders) {
        var parent = InstrumentationContext.current ?? .topLevel
        InstrumentationSystem.instrument.extract(headers, into: &parent, using: NIOHeadersCarrier())
        let route = exchange.target.prefix == .mcp ? "/mcp/{name}" : "/rest/{name}/{path}"
        let span = startSpan("\(exchange.method.rawValue) \(route)", context: parent, ofKind: .server)
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

    /// What an MCP call asks, on its span (the facts the governance step read, else the body read now).
    static func describe(_ exchange: ProxyExchange, mcpBody: ByteBuffer?) {
        guard let span = exchange.span, exchange.target.prefix == .mcp else { return }
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

    /// The upstream request's `traceparent` (and `tracestate`): the current span's, replacing any the caller sent.
    static func inject(into headers: inout HTTPHeaders) {
        guard let context = InstrumentationContext.current else { return }
        InstrumentationSystem.instrument.inject(context, into: &headers, using: NIOHeadersCarrier())
    }

    /// `trace_id` and `span_id` of a call's span, for its log line (read from its W3C form).
    static func logIDs(_ exchange: ProxyExchange) -> (traceID: String, spanID: String)? {
        guard let span = exchange.span else { return nil }
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
