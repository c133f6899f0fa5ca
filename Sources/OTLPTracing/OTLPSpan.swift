import Synchronization
public import Tracing
import W3CTraceContext

/// One span. Its mutable parts sit behind one lock (a span is shared by the tasks of one
/// request); `end` hands a copy to the exporter's batch, once, and the span records nothing after.
/// An unsampled span records nothing at all: it exists to carry its context on.
public final class OTLPSpan: Tracing.Span, Sendable {
    public let context: InstrumentationContext
    let spanContext: SpanContext
    let parentSpanID: SpanID?
    let kind: SpanKind
    let start: UInt64
    private let batch: SpanBatch?
    private let state: Mutex<State>

    struct State {
        var name: String
        var attributes = SpanAttributes()
        var events: [SpanEvent] = []
        var links: [SpanLink] = []
        var status: SpanStatus?
        var ended = false
    }

    init(name: String, context: InstrumentationContext, spanContext: SpanContext, parentSpanID: SpanID?, kind: SpanKind, start: UInt64, batch: SpanBatch?) {
        var context = context
        context.spanContext = spanContext
        self.context = context
        self.spanContext = spanContext
        self.parentSpanID = parentSpanID
        self.kind = kind
        self.start = start
        self.batch = batch
        self.state = Mutex(State(name: name))
    }

    /// Recording: sampled and not yet ended.
    public var isRecording: Bool { batch != nil && !state.withLock { $0.ended } }

    public var operationName: String {
        get { state.withLock { $0.name } }
        set { guard batch != nil else { return }; state.withLock { if !$0.ended { $0.name = newValue } } }
    }

    public var attributes: SpanAttributes {
        get { state.withLock { $0.attributes } }
        set { guard batch != nil else { return }; state.withLock { if !$0.ended { $0.attributes = newValue } } }
    }

    public func setStatus(_ status: SpanStatus) {
        guard batch != nil else { return }
        state.withLock { s in
            // The specification: Ok is final; Unset never replaces a status.
            if !s.ended, s.status?.code != .ok { s.status = status }
        }
    }

    public func addEvent(_ event: SpanEvent) {
        guard batch != nil else { return }
        state.withLock { if !$0.ended { $0.events.append(event) } }
    }

    /// An `exception` event with the error's type and description (the semantic conventions').
    public func recordError<Instant: TracerInstant>(_ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant) {
        guard batch != nil else { return }
        var attributes = attributes
        attributes["exception.type"] = String(reflecting: type(of: error))
        attributes["exception.message"] = String(describing: error)
        addEvent(SpanEvent(name: "exception", at: instant(), attributes: attributes))
    }

    public func addLink(_ link: SpanLink) {
        guard batch != nil else { return }
        state.withLock { if !$0.ended { $0.links.append(link) } }
    }

    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        end(adding: [], at: instant().nanosecondsSinceEpoch)
    }

    /// Ends the span with `attributes` added to those set on it: a caller that gathered its
    /// attributes as it went hands them over as a list (no `SpanAttributes` dictionary built,
    /// hashed and walked per span: on the gateway's warm call that was a few percent of its CPU).
    public func end(adding attributes: [(String, OTLPValue)]) {
        end(adding: attributes, at: DefaultTracerClock.now.nanosecondsSinceEpoch)
    }

    private func end(adding list: [(String, OTLPValue)], at end: UInt64) {
        guard let batch else { return }
        let finished = state.withLock { s -> State? in
            guard !s.ended else { return nil }
            s.ended = true
            return s
        }
        guard let finished else { return }
        batch.add(FinishedSpan(
            name: finished.name, trace: spanContext.trace, parentSpanID: parentSpanID, kind: kind, start: start,
            end: end, attributes: finished.attributes, list: list, events: finished.events, links: finished.links,
            status: finished.status))
    }
}

/// What is exported of an ended span.
struct FinishedSpan: Sendable {
    var name: String
    var trace: TraceContext
    var parentSpanID: SpanID?
    var kind: SpanKind
    var start: UInt64
    var end: UInt64
    var attributes: SpanAttributes
    var list: [(String, OTLPValue)] = []
    var events: [SpanEvent]
    var links: [SpanLink]
    var status: SpanStatus?
}

/// An attribute's value as ``OTLPSpan/end(adding:)`` takes it: the types the OTLP `AnyValue`
/// encodes directly.
public enum OTLPValue: Sendable {
    case string(String)
    case int(Int64)
    case bool(Bool)

    /// The same value for any other tracer.
    public var spanAttribute: SpanAttribute {
        switch self {
        case .string(let s): .string(s)
        case .int(let i): .int64(i)
        case .bool(let b): .bool(b)
        }
    }
}
