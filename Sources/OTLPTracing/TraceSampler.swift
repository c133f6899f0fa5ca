import W3CTraceContext

/// Whether a new span is recorded and exported (the OpenTelemetry SDK's built-in samplers, named
/// as `OTEL_TRACES_SAMPLER` names them). An unsampled span still carries its trace on
/// (`traceparent` with flags `00`), so the services after it make the same decision.
public indirect enum TraceSampler: Sendable, Equatable {
    case alwaysOn
    case alwaysOff
    /// A fixed share of traces, decided from the trace id alone (so every service that sees the
    /// trace decides alike).
    case traceIDRatio(Double)
    /// A span with a parent follows the parent's decision; a root span asks `root`.
    case parentBased(root: TraceSampler)

    init(name: String?, argument: String?) throws(TracingSettings.Invalid) {
        func ratio() throws(TracingSettings.Invalid) -> Double {
            guard let argument else { return 1 }
            guard let r = Double(argument), r >= 0, r <= 1 else {
                throw TracingSettings.Invalid(description: "OTEL_TRACES_SAMPLER_ARG is not a ratio between 0 and 1: \(argument)")
            }
            return r
        }
        switch name?.lowercased() {
        case nil, "parentbased_always_on": self = .parentBased(root: .alwaysOn)
        case "always_on": self = .alwaysOn
        case "always_off": self = .alwaysOff
        case "traceidratio": self = .traceIDRatio(try ratio())
        case "parentbased_always_off": self = .parentBased(root: .alwaysOff)
        case "parentbased_traceidratio": self = .parentBased(root: .traceIDRatio(try ratio()))
        case let other?: throw TracingSettings.Invalid(description: "OTEL_TRACES_SAMPLER=\(other) is not supported")
        }
    }

    /// The decision for a span in `traceID` whose parent is `parent` (nil: a root span).
    func sample(_ traceID: TraceID, parent: TraceContext?) -> Bool {
        switch self {
        case .alwaysOn: return true
        case .alwaysOff: return false
        case .traceIDRatio(let ratio):
            if ratio >= 1 { return true }
            if ratio <= 0 { return false }
            // The trace id's last 8 bytes as a 63-bit number against ratio × 2^63 (what the
            // other SDKs do, so a trace sampled in one service is sampled in the next).
            let low = withUnsafeBytes(of: traceID.bytes) { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self).bigEndian >> 1 }
            return Double(low) < ratio * 9_223_372_036_854_775_808.0
        case .parentBased(let root):
            guard let parent else { return root.sample(traceID, parent: nil) }
            return parent.flags.contains(.sampled)
        }
    }
}
