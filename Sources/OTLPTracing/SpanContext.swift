public import Instrumentation
public import W3CTraceContext

/// What a span (or a caller's `traceparent`) puts in the `InstrumentationContext`: the W3C trace
/// context its children continue and its requests carry on.
public struct SpanContext: Sendable, Equatable {
    public var trace: TraceContext
    /// From a caller's header, not a span of this process.
    public var isRemote: Bool

    public var isSampled: Bool { trace.flags.contains(.sampled) }

    public static func == (a: Self, b: Self) -> Bool {
        a.trace.traceID == b.trace.traceID && a.trace.spanID == b.trace.spanID && a.trace.flags == b.trace.flags && a.isRemote == b.isRemote
    }
}

private enum SpanContextKey: InstrumentationContextKey {
    typealias Value = SpanContext
    static var nameOverride: String? { "otlp-span-context" }
}

extension InstrumentationContext {
    /// The current span's trace context (or the caller's, before the first span).
    public var spanContext: SpanContext? {
        get { self[SpanContextKey.self] }
        set { self[SpanContextKey.self] = newValue }
    }
}

/// W3C Trace Context (`traceparent`, `tracestate`) in and out of any carrier.
enum W3CPropagation {
    /// The caller's context, or nil when its `traceparent` is missing or invalid (then the
    /// span starts a trace of its own, as the W3C specification says).
    static func extract<Carrier, E: Extractor>(_ carrier: Carrier, using extractor: E) -> SpanContext? where E.Carrier == Carrier {
        guard let parent = extractor.extract(key: "traceparent", from: carrier) else { return nil }
        let state = extractor.extract(key: "tracestate", from: carrier)
        if let trace = try? TraceContext(traceParentHeaderValue: parent, traceStateHeaderValue: state) {
            return SpanContext(trace: trace, isRemote: true)
        }
        // A bad tracestate must not cost the trace its parent.
        guard let trace = try? TraceContext(traceParentHeaderValue: parent) else { return nil }
        return SpanContext(trace: trace, isRemote: true)
    }

    static func inject<Carrier, I: Injector>(_ context: SpanContext, into carrier: inout Carrier, using injector: I) where I.Carrier == Carrier {
        injector.inject(traceparent(context.trace), forKey: "traceparent", into: &carrier)
        if !context.trace.state.isEmpty, let state = context.trace.traceStateHeaderValue { injector.inject(state, forKey: "tracestate", into: &carrier) }
    }

    /// `00-{trace id}-{span id}-{flags}` in lowercase hex, written into one buffer (the
    /// library's interpolation of each id's description cost more than the rest of a span).
    static func traceparent(_ trace: TraceContext) -> String {
        String(unsafeUninitializedCapacity: 55) { out in
            let hex: StaticString = "0123456789abcdef"
            var i = 0
            func put(_ byte: UInt8) {
                hex.withUTF8Buffer { digits in
                    out[i] = digits[Int(byte >> 4)]
                    out[i + 1] = digits[Int(byte & 0x0F)]
                }
                i += 2
            }
            func dash() { out[i] = UInt8(ascii: "-"); i += 1 }
            put(0)
            dash()
            withUnsafeBytes(of: trace.traceID.bytes) { for b in $0 { put(b) } }
            dash()
            withUnsafeBytes(of: trace.spanID.bytes) { for b in $0 { put(b) } }
            dash()
            put(trace.flags.rawValue)
            return i
        }
    }
}
