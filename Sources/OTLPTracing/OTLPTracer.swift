public import Instrumentation
public import Logging
public import Tracing
import Synchronization
import W3CTraceContext

/// The process's tracer: samples, makes ids, and hands ended spans to its ``SpanBatch``;
/// propagates W3C Trace Context. Cheap on the calling thread: no task is woken per span.
public struct OTLPTracer: Tracer {
    public typealias Span = OTLPSpan
    let sampler: TraceSampler
    let batch: SpanBatch

    init(sampler: TraceSampler, batch: SpanBatch) {
        self.sampler = sampler
        self.batch = batch
    }

    public func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> InstrumentationContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> OTLPSpan {
        let parentContext = context()
        let parent = parentContext.spanContext?.trace
        let traceID = parent?.traceID ?? IDGenerator.traceID()
        let sampled = sampler.sample(traceID, parent: parent)
        let trace = TraceContext(
            traceID: traceID, spanID: IDGenerator.spanID(), flags: sampled ? .sampled : [], state: parent?.state ?? TraceState())
        return OTLPSpan(
            name: operationName, context: parentContext, spanContext: SpanContext(trace: trace, isRemote: false),
            parentSpanID: parent?.spanID, kind: kind, start: instant().nanosecondsSinceEpoch, batch: sampled ? batch : nil)
    }

    /// Wakes the exporter to send what is waiting.
    public func forceFlush() { batch.wake() }

    public func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout InstrumentationContext, using extractor: Extract)
    where Extract.Carrier == Carrier {
        // No valid traceparent: the context stays as it was (the specification's extract).
        if let remote = W3CPropagation.extract(carrier, using: extractor) { context.spanContext = remote }
    }

    public func inject<Carrier, Inject: Injector>(_ context: InstrumentationContext, into carrier: inout Carrier, using injector: Inject)
    where Inject.Carrier == Carrier {
        guard let spanContext = context.spanContext else { return }
        W3CPropagation.inject(spanContext, into: &carrier, using: injector)
    }
}

extension OTLPTracer {
    /// A tracer and the exporter its spans go to (run the exporter as a service; bootstrap the
    /// tracer with `InstrumentationSystem.bootstrap`).
    public static func make(settings: TracingSettings, logger: Logger) -> (tracer: OTLPTracer, exporter: SpanExporter) {
        let batch = SpanBatch(maxQueueSize: settings.maxQueueSize, maxExportBatchSize: settings.maxExportBatchSize)
        return (OTLPTracer(sampler: settings.sampler, batch: batch), SpanExporter(settings: settings, batch: batch, logger: logger))
    }
}

/// Trace and span ids from xoshiro256** seeded by the system's generator: random as the
/// W3C specification asks, without a `getrandom` system call per id (ids are not secrets).
enum IDGenerator {
    private static let state = Mutex(Xoshiro256StarStar())

    static func traceID() -> TraceID {
        var id = TraceID.null
        repeat { id = state.withLock { TraceID.random(using: &$0) } } while id == .null
        return id
    }

    static func spanID() -> SpanID {
        var id = SpanID.null
        repeat { id = state.withLock { SpanID.random(using: &$0) } } while id == .null
        return id
    }
}

struct Xoshiro256StarStar: RandomNumberGenerator {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init() {
        var seed = SystemRandomNumberGenerator()
        repeat { s = (seed.next(), seed.next(), seed.next(), seed.next()) } while s == (0, 0, 0, 0)
    }

    mutating func next() -> UInt64 {
        let result = rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = rotl(s.3, 45)
        return result
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}
