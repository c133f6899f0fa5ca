import AsyncHTTPClient
import Logging
import NIOCore
public import ServiceLifecycle
import Synchronization

/// Ended spans waiting for export (the specification's batch span processor, without a task
/// hand-off per span): `add` encodes the span into the batch being filled, under a lock, on the
/// thread that ended it — what the span held is freed where it was made, and the batch is bytes
/// (a span's attribute set freed on the exporter's thread cost more than the encoding). The
/// exporter is woken only when a batch is full; a full queue drops the span and counts it.
final class SpanBatch: Sendable {
    private struct State {
        /// Whole batches: `ScopeSpans.spans` fields, `maxExportBatchSize` spans each.
        var full: [[UInt8]] = []
        var filling = ProtoWriter()
        var filled = 0
        var queued = 0
        var dropped = 0
    }
    private let state = Mutex(State())
    private let maxQueueSize: Int
    let maxExportBatchSize: Int
    private let wakes: AsyncStream<Reason>.Continuation
    let wakeUps: AsyncStream<Reason>

    /// Why the exporter wakes: a full batch sends full batches only (what keeps arriving while
    /// one is sent waits for the next batch or the timer); the timer and a flush send all.
    enum Reason { case full, all }

    init(maxQueueSize: Int, maxExportBatchSize: Int) {
        self.maxQueueSize = maxQueueSize
        self.maxExportBatchSize = maxExportBatchSize
        (wakeUps, wakes) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func add(_ span: FinishedSpan) {
        let full = state.withLock { s -> Bool in
            guard s.queued < maxQueueSize else {
                s.dropped += 1
                return false
            }
            if s.filled == 0 { s.filling.bytes.reserveCapacity(maxExportBatchSize * 400) }
            s.filling.message(2) { OTLPEncoding.encode(span, into: &$0) }  // ScopeSpans.spans
            s.filled += 1
            s.queued += 1
            guard s.filled == maxExportBatchSize else { return false }
            s.full.append(s.filling.bytes)
            s.filling = ProtoWriter()
            s.filled = 0
            return true
        }
        if full { wakes.yield(.full) }
    }

    func wake() { wakes.yield(.all) }

    /// One batch, oldest first (nothing when fewer than `minimum` spans wait): its encoded
    /// spans and their count, and the count dropped since the last take.
    func take(minimum: Int = 1) -> (spans: [UInt8], count: Int, dropped: Int) {
        state.withLock { s in
            defer { s.dropped = 0 }
            if !s.full.isEmpty {
                s.queued -= maxExportBatchSize
                return (s.full.removeFirst(), maxExportBatchSize, s.dropped)
            }
            guard s.filled >= max(minimum, 1) else { return ([], 0, s.dropped) }
            let taken = (s.filling.bytes, s.filled, s.dropped)
            s.queued -= s.filled
            s.filling = ProtoWriter()
            s.filled = 0
            return taken
        }
    }

    func finish() { wakes.finish() }
}

/// Sends the batch over OTLP/HTTP: every `OTEL_BSP_SCHEDULE_DELAY`, when a batch is full, on
/// `forceFlush`, and what is left when the process shuts down (run it so that it stops after the
/// application: the spans of the last calls are sent). A failed export is dropped and said, at
/// most every 10 s with the counts; the process is never held up by its collector.
public final class SpanExporter: Service, Sendable {
    let settings: TracingSettings
    let batch: SpanBatch
    private let client: HTTPClient
    private let logger: Logger
    private let resource: [UInt8]

    init(settings: TracingSettings, batch: SpanBatch, logger: Logger) {
        self.settings = settings
        self.batch = batch
        self.logger = logger
        var configuration = HTTPClient.Configuration()
        configuration.tracing.tracer = nil  // its own requests are not traced (they would feed themselves)
        configuration.timeout = .init(connect: .seconds(2))  // the whole request: OTEL_EXPORTER_OTLP_TIMEOUT (below)
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        resource = OTLPEncoding.resource(settings.resource)
    }

    public func run() async throws {
        let delay = settings.scheduleDelay
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [batch] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: delay)
                    batch.wake()
                }
            }
            for await reason in batch.wakeUps.cancelOnGracefulShutdown() {
                await export(fullOnly: reason == .full)
            }
            group.cancelAll()
        }
        await export(fullOnly: false)  // the spans of the calls answered while the application drained
        batch.finish()
        try? await client.shutdown()
    }

    private struct Failures {
        var spans = 0
        var dropped = 0
        var last: String = ""
        var lastWarning: ContinuousClock.Instant?
    }
    private let failures = Mutex(Failures())

    /// What is waiting (only whole batches when `fullOnly`), one batch per request.
    func export(fullOnly: Bool) async {
        while true {
            let (spans, count, dropped) = batch.take(minimum: fullOnly ? settings.maxExportBatchSize : 1)
            if dropped > 0 { failures.withLock { $0.dropped += dropped } }
            if count == 0 { break }
            await export(spans, count: count)
        }
        reportFailures()
    }

    private func export(_ spans: [UInt8], count: Int) async {
        var request = HTTPClientRequest(url: settings.endpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-protobuf")
        for (name, value) in settings.headers { request.headers.replaceOrAdd(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: OTLPEncoding.request(resource: resource, encodedSpans: spans)))
        let timeout = settings.timeout.components
        let deadline = NIODeadline.now() + .nanoseconds(timeout.seconds * 1_000_000_000 + timeout.attoseconds / 1_000_000_000)
        // One retry for what the OTLP specification calls retryable (429, 502, 503, 504, no answer).
        for attempt in 0..<2 {
            do {
                let response = try await client.execute(request, deadline: deadline)
                _ = try? await response.body.collect(upTo: 1 << 20)
                if (200..<300).contains(response.status.code) { return }
                let retryable = [429, 502, 503, 504].contains(response.status.code)
                if !retryable || attempt == 1 { return failed(count, "the collector answered \(response.status.code)") }
            } catch {
                if attempt == 1 { return failed(count, "\(error)") }
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    private func failed(_ count: Int, _ why: String) {
        failures.withLock { f in
            f.spans += count
            f.last = why
        }
    }

    private func reportFailures() {
        let report = failures.withLock { f -> Failures? in
            guard f.spans + f.dropped > 0 else { return nil }
            if let last = f.lastWarning, ContinuousClock.now - last < .seconds(10) { return nil }
            defer { f = Failures(lastWarning: .now) }
            return f
        }
        guard let report else { return }
        logger.warning("spans were not exported", metadata: [
            "endpoint": "\(settings.endpoint)", "failed": "\(report.spans)", "dropped_queue_full": "\(report.dropped)",
            "error": "\(report.last)",
        ])
    }
}
