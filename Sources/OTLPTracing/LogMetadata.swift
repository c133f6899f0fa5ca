import Instrumentation
public import Logging
public import Tracing

/// What a log line carries of the current span (swift-log's metadata provider): `trace_id`,
/// `span_id` and `trace_flags`, as the OpenTelemetry log data model names them.
public enum TraceLogMetadata {
    public static let provider = Logger.MetadataProvider {
        guard let context = InstrumentationContext.current?.spanContext else { return [:] }
        return ids(context)
    }

    /// A span's ids for a log line (the access log's, which has the span at hand).
    public static func ids(of span: any Tracing.Span) -> (traceID: String, spanID: String)? {
        span.context.spanContext.map { ("\($0.trace.traceID)", "\($0.trace.spanID)") }
    }

    static func ids(_ context: SpanContext) -> Logger.Metadata {
        ["trace_id": "\(context.trace.traceID)", "span_id": "\(context.trace.spanID)", "trace_flags": "\(context.isSampled ? "01" : "00")"]
    }
}
