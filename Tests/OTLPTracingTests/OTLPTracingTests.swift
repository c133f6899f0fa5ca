import Foundation
import Instrumentation
import Logging
@testable import OTLPTracing
import Testing
import Tracing
import W3CTraceContext

/// The tracer's parts without a network: settings from the environment, sampling, span ids and
/// propagation, the batch, and the wire format (Tests/interop decode real exports with the
/// `opentelemetry-proto` package).
/// A protobuf message's top-level fields: (number, wire type, payload bytes or varint value).
func fields(_ bytes: [UInt8]) -> [(Int, Int, [UInt8], UInt64)] {
    var out: [(Int, Int, [UInt8], UInt64)] = []
    var i = 0
    func varint() -> UInt64 {
        var v: UInt64 = 0, shift: UInt64 = 0
        while true {
            let b = bytes[i]; i += 1
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
    }
    while i < bytes.count {
        let tag = varint()
        let (field, wire) = (Int(tag >> 3), Int(tag & 7))
        switch wire {
        case 0: out.append((field, 0, [], varint()))
        case 1: out.append((field, 1, Array(bytes[i..<i + 8]), 0)); i += 8
        case 2: let n = Int(varint()); out.append((field, 2, Array(bytes[i..<i + n]), 0)); i += n
        default: Issue.record("wire type \(wire)"); return out
        }
    }
    return out
}

/// A span as a batch holds it (trace.proto's `Span`), read back for the tests.
struct DecodedSpan {
    var name = "", traceID = "", spanID = "", parentSpanID: String?, kind: UInt64 = 0
    var attributes: [String: String] = [:]
    var events: [String] = []
    var statusCode: UInt64?, statusMessage: String?

    static func all(in batch: [UInt8]) -> [DecodedSpan] {
        fields(batch).filter { $0.0 == 2 }.map { DecodedSpan($0.2) }  // ScopeSpans.spans
    }

    init(_ bytes: [UInt8]) {
        func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }
        func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }
        for (field, _, payload, value) in fields(bytes) {
            switch field {
            case 1: traceID = hex(payload)
            case 2: spanID = hex(payload)
            case 4: parentSpanID = hex(payload)
            case 5: name = text(payload)
            case 6: kind = value
            case 9:
                let kv = fields(payload)
                let key = kv.first { $0.0 == 1 }.map { text($0.2) } ?? ""
                let any = kv.first { $0.0 == 2 }.map { fields($0.2) } ?? []
                attributes[key] = any.first.map { $0.1 == 2 ? text($0.2) : String($0.3) }
            case 11: events.append(fields(payload).first { $0.0 == 2 }.map { text($0.2) } ?? "")
            case 15:
                let st = fields(payload)
                statusCode = st.first { $0.0 == 3 }?.3
                statusMessage = st.first { $0.0 == 2 }.map { text($0.2) }
            default: break
            }
        }
    }
}

@Suite struct TracingSettingsTests {
    @Test func offWithoutAnEndpointOrWhenDisabled() throws {
        #expect(try TracingSettings.fromEnvironment([:], serviceName: "s") == nil)
        let endpoint = ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"]
        #expect(try TracingSettings.fromEnvironment(endpoint.merging(["OTEL_SDK_DISABLED": "true"]) { $1 }, serviceName: "s") == nil)
        #expect(try TracingSettings.fromEnvironment(endpoint.merging(["OTEL_TRACES_EXPORTER": "none"]) { $1 }, serviceName: "s") == nil)
        #expect(try TracingSettings.fromEnvironment(endpoint, serviceName: "s") != nil)
    }

    @Test func theSpecificationsDefaults() throws {
        let s = try #require(try TracingSettings.fromEnvironment(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"], serviceName: "gw"))
        #expect(s.endpoint == "http://c:4318/v1/traces")
        #expect(s.sampler == .parentBased(root: .alwaysOn))
        #expect(s.scheduleDelay == .milliseconds(5000) && s.maxQueueSize == 2048 && s.maxExportBatchSize == 512 && s.timeout == .seconds(10))
        #expect(s.resource.first { $0.key == "service.name" }?.value == "gw")
    }

    @Test func signalSpecificVariablesWin() throws {
        let s = try #require(try TracingSettings.fromEnvironment([
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/custom",
            "OTEL_EXPORTER_OTLP_HEADERS": "a=1,b=2", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "B=3",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "500", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "250",
        ], serviceName: "gw"))
        #expect(s.endpoint == "http://t:1/custom")
        #expect(s.headers.map { "\($0.name)=\($0.value)" } == ["a=1", "B=3"])
        #expect(s.timeout == .milliseconds(250))
    }

    @Test func resourceAttributesAreDecodedAndTheServiceNameVariableWins() throws {
        let base = ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_RESOURCE_ATTRIBUTES": "service.name=fromattrs,team=a%20b, env = test"]
        let s = try #require(try TracingSettings.fromEnvironment(base, serviceName: "gw"))
        let resource = Dictionary(s.resource.map { ($0.key, $0.value) }) { $1 }
        #expect(resource["service.name"] == "fromattrs" && resource["team"] == "a b" && resource["env"] == "test")
        let named = try #require(try TracingSettings.fromEnvironment(base.merging(["OTEL_SERVICE_NAME": "mine"]) { $1 }, serviceName: "gw"))
        #expect(named.resource.filter { $0.key == "service.name" }.map(\.value) == ["mine"])
    }

    @Test(arguments: [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"), ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"), ("OTEL_BSP_SCHEDULE_DELAY", "soon"), ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"), ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"), ("OTEL_TRACES_EXPORTER", "zipkin"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x/"),
    ])
    func whatCannotBeHonouredIsAnError(name: String, value: String) {
        var env = ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", name: value]
        if name == "OTEL_TRACES_SAMPLER_ARG" { env["OTEL_TRACES_SAMPLER"] = "traceidratio" }
        #expect(throws: TracingSettings.Invalid.self) { try TracingSettings.fromEnvironment(env, serviceName: "s") }
    }
}

@Suite struct TraceSamplerTests {
    @Test func ratioIsDecidedByTheTraceIDAlone() {
        let ids = (0..<4000).map { _ in TraceID.random() }
        let sampled = ids.filter { TraceSampler.traceIDRatio(0.25).sample($0, parent: nil) }
        #expect((800...1200).contains(sampled.count), "\(sampled.count) of 4000 at 0.25")
        #expect(sampled.allSatisfy { TraceSampler.traceIDRatio(0.25).sample($0, parent: nil) })
        #expect(sampled.allSatisfy { TraceSampler.traceIDRatio(0.5).sample($0, parent: nil) }, "a higher ratio keeps every trace a lower one keeps")
        #expect(ids.allSatisfy { TraceSampler.traceIDRatio(1).sample($0, parent: nil) })
        #expect(!ids.contains { TraceSampler.traceIDRatio(0).sample($0, parent: nil) })
    }

    @Test func parentBasedFollowsTheParent() {
        let id = TraceID.random()
        let sampledParent = TraceContext(traceID: id, spanID: .random(), flags: .sampled, state: TraceState())
        let unsampledParent = TraceContext(traceID: id, spanID: .random(), flags: [], state: TraceState())
        #expect(TraceSampler.parentBased(root: .alwaysOff).sample(id, parent: sampledParent))
        #expect(!TraceSampler.parentBased(root: .alwaysOn).sample(id, parent: unsampledParent))
        #expect(TraceSampler.parentBased(root: .alwaysOn).sample(id, parent: nil))
        #expect(!TraceSampler.parentBased(root: .alwaysOff).sample(id, parent: nil))
    }
}

/// `traceparent` and `tracestate` in a plain dictionary.
struct DictionaryCarrier: Extractor, Injector {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

@Suite struct OTLPTracerTests {
    func tracer(_ sampler: TraceSampler = .alwaysOn, queue: Int = 100, batchSize: Int = 50) -> (OTLPTracer, SpanBatch) {
        let batch = SpanBatch(maxQueueSize: queue, maxExportBatchSize: batchSize)
        return (OTLPTracer(sampler: sampler, batch: batch), batch)
    }

    @Test func aChildContinuesItsParentsTraceAndIsExportedOnce() {
        let (tracer, batch) = tracer()
        let root = tracer.startSpan("root", context: .topLevel)
        let child = tracer.startSpan("child", context: root.context, ofKind: .client)
        child.attributes["k"] = "v"
        child.end()
        child.end()
        root.end()
        let spans = DecodedSpan.all(in: batch.take().spans)
        #expect(spans.map(\.name) == ["child", "root"])
        #expect(spans[0].traceID == spans[1].traceID && spans[0].parentSpanID == spans[1].spanID && spans[1].parentSpanID == nil)
        #expect(spans[0].kind == 3 && spans[0].attributes["k"] == "v")  // SPAN_KIND_CLIENT
        #expect(!child.isRecording)
    }

    @Test func aCallersTraceparentIsContinuedAndCarriedOn() {
        let (tracer, batch) = tracer(.parentBased(root: .alwaysOn))
        var incoming = InstrumentationContext.topLevel
        tracer.extract(["traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "v=1"],
                       into: &incoming, using: DictionaryCarrier())
        let span = tracer.startSpan("server", context: incoming, ofKind: .server)
        var outgoing: [String: String] = [:]
        tracer.inject(span.context, into: &outgoing, using: DictionaryCarrier())
        #expect(outgoing["traceparent"]?.hasPrefix("00-0af7651916cd43dd8448eb211c80319c-") == true)
        #expect(outgoing["traceparent"]?.hasSuffix("-01") == true && outgoing["traceparent"]?.contains("b7ad6b7169203331") == false)
        #expect(outgoing["tracestate"] == "v=1")
        span.end()
        #expect(DecodedSpan.all(in: batch.take().spans).first?.parentSpanID == "b7ad6b7169203331")
    }

    @Test func anUnsampledCallerIsNotRecordedYetItsTraceGoesOn() {
        let (tracer, batch) = tracer(.parentBased(root: .alwaysOn))
        var incoming = InstrumentationContext.topLevel
        tracer.extract(["traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"], into: &incoming, using: DictionaryCarrier())
        let span = tracer.startSpan("server", context: incoming, ofKind: .server)
        span.attributes["ignored"] = 1
        span.end()
        var outgoing: [String: String] = [:]
        tracer.inject(span.context, into: &outgoing, using: DictionaryCarrier())
        #expect(!span.isRecording && batch.take().count == 0)
        #expect(outgoing["traceparent"]?.hasPrefix("00-0af7651916cd43dd8448eb211c80319c-") == true && outgoing["traceparent"]?.hasSuffix("-00") == true)
    }

    @Test func anInvalidTraceparentLeavesTheContextAsItWas() {
        let (tracer, _) = tracer()
        let current = tracer.startSpan("current", context: .topLevel).context
        for bad in ["00-00000000000000000000000000000000-b7ad6b7169203331-01", "garbage", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"] {
            var context = current
            tracer.extract(["traceparent": bad], into: &context, using: DictionaryCarrier())
            #expect(context.spanContext == current.spanContext, "\(bad)")
        }
    }

    @Test func aFullQueueDropsAndCounts() {
        let (tracer, batch) = tracer(queue: 3, batchSize: 2)
        for i in 0..<5 { tracer.startSpan("s\(i)", context: .topLevel).end() }
        let first = batch.take()
        #expect(DecodedSpan.all(in: first.spans).map(\.name) == ["s0", "s1"] && first.count == 2 && first.dropped == 2)
        #expect(batch.take(minimum: 2).count == 0, "a batch not yet full waits for the timer")
        #expect(DecodedSpan.all(in: batch.take().spans).map(\.name) == ["s2"] && batch.take().count == 0)
    }

    @Test func attributesHandedOverAsAListAreExportedWithThoseSetOnTheSpan() {
        let (tracer, batch) = tracer()
        let span = tracer.startSpan("s", context: .topLevel)
        span.attributes["set.before"] = "yes"
        span.end(adding: [("http.response.status_code", .int(404)), ("switchboard.connection", .string("todo0")), ("ok", .bool(false))])
        span.end(adding: [("late", .string("ignored"))])
        let spans = DecodedSpan.all(in: batch.take().spans)
        #expect(spans.count == 1)
        #expect(spans.first?.attributes == ["set.before": "yes", "http.response.status_code": "404", "switchboard.connection": "todo0", "ok": "0"])
    }

    @Test func recordErrorIsAnExceptionEvent() {
        struct Refused: Error {}
        let (tracer, batch) = tracer()
        let span = tracer.startSpan("s", context: .topLevel)
        span.recordError(Refused())
        span.setStatus(.init(code: .error, message: "refused"))
        span.end()
        let finished = DecodedSpan.all(in: batch.take().spans)[0]
        #expect(finished.events == ["exception"] && finished.statusMessage == "refused" && finished.statusCode == 2)
    }
}

@Suite struct OTLPEncodingTests {
    @Test func varintsAndNestedLengthsFollowTheWireFormat() {
        var w = ProtoWriter()
        w.varint(1, 300)
        #expect(w.bytes == [0x08, 0xAC, 0x02])
        var nested = ProtoWriter()
        nested.message(2) { inner in inner.bytes(1, [UInt8](repeating: 7, count: 200)) }
        #expect(Array(nested.bytes.prefix(5)) == [0x12, 0xCB, 0x01, 0x0A, 0xC8])  // 203 = 0xCB 0x01; 200 = 0xC8 0x01
        #expect(nested.bytes.count == 3 + 3 + 200)
    }

    @Test func aSpanHasTheProtoFieldNumbers() throws {
        let batch = SpanBatch(maxQueueSize: 10, maxExportBatchSize: 10)
        let tracer = OTLPTracer(sampler: .alwaysOn, batch: batch)
        let parent = tracer.startSpan("parent", context: .topLevel)
        let span = tracer.startSpan("GET /x", context: parent.context, ofKind: .server)
        span.attributes["http.response.status_code"] = 200
        span.attributes["ok"] = true
        span.setStatus(.init(code: .error))
        span.end()
        let encoded = batch.take().spans
        let spanFields = fields(try #require(fields(encoded).first { $0.0 == 2 }).2)
        #expect(spanFields.first { $0.0 == 1 }?.2.count == 16 && spanFields.first { $0.0 == 2 }?.2.count == 8 && spanFields.first { $0.0 == 4 }?.2.count == 8)
        #expect(spanFields.contains { $0.0 == 7 && $0.1 == 1 } && spanFields.contains { $0.0 == 8 && $0.1 == 1 }, "times are fixed64")
        let decoded = DecodedSpan(fields(encoded)[0].2)
        #expect(decoded.name == "GET /x" && decoded.kind == 2 && decoded.statusCode == 2)  // SPAN_KIND_SERVER, STATUS_CODE_ERROR
        #expect(decoded.attributes == ["http.response.status_code": "200", "ok": "1"])
        let request = fields(OTLPEncoding.request(resource: OTLPEncoding.resource([("service.name", "gw")]), encodedSpans: encoded))
        #expect(request.count == 1 && request[0].0 == 1)
        let resourceSpans = fields(request[0].2)
        #expect(resourceSpans.map(\.0) == [1, 2])
        let scopeSpans = fields(resourceSpans[1].2)
        #expect(scopeSpans.first?.0 == 1 && scopeSpans.filter { $0.0 == 2 }.map { DecodedSpan($0.2).name } == ["GET /x"])
    }
}
