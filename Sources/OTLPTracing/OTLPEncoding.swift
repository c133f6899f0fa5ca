import Tracing
import W3CTraceContext

/// `ExportTraceServiceRequest` (opentelemetry-proto, collector/trace/v1) in protobuf's wire
/// format, written straight from the finished spans: no message objects in between. Field
/// numbers are those of the `.proto` files (named at each use); Tests/interop parse the result
/// with the `opentelemetry-proto` package.
enum OTLPEncoding {
    /// The `Resource` message's bytes (its attributes), made once per process.
    static func resource(_ attributes: [(key: String, value: String)]) -> [UInt8] {
        var w = ProtoWriter()
        for (key, value) in attributes {
            w.message(1) { kv in  // Resource.attributes
                kv.string(1, key)
                kv.message(2) { $0.string(1, value) }  // AnyValue.string_value
            }
        }
        return w.bytes
    }

    /// The request around a batch: `encodedSpans` are `ScopeSpans.spans` fields (``SpanBatch``).
    static func request(resource: [UInt8], encodedSpans: [UInt8]) -> [UInt8] {
        var w = ProtoWriter()
        w.bytes.reserveCapacity(256 + resource.count + encodedSpans.count)
        w.message(1) { rs in  // ExportTraceServiceRequest.resource_spans
            rs.bytes(1, resource)  // ResourceSpans.resource
            rs.message(2) { ss in  // ResourceSpans.scope_spans
                ss.message(1) { $0.string(1, "switchboard") }  // ScopeSpans.scope: InstrumentationScope.name
                ss.bytes.append(contentsOf: encodedSpans)
            }
        }
        return w.bytes
    }

    static func encode(_ span: FinishedSpan, into w: inout ProtoWriter) {
        w.traceID(1, span.trace.traceID)
        w.spanID(2, span.trace.spanID)
        if let state = span.trace.traceStateHeaderValue { w.string(3, state) }
        if let parent = span.parentSpanID { w.spanID(4, parent) }
        w.string(5, span.name)
        w.varint(6, kind(span.kind))
        w.fixed64(7, span.start)
        w.fixed64(8, span.end)
        attributes(span.attributes, field: 9, into: &w)
        for (key, value) in span.list {
            w.message(9) { kv in  // Span.attributes: KeyValue
                kv.string(1, key)
                kv.message(2) { v in
                    switch value {
                    case .string(let s): v.string(1, s)
                    case .bool(let b): v.varint(2, b ? 1 : 0)
                    case .int(let i): v.varint(3, UInt64(bitPattern: i))
                    }
                }
            }
        }
        for event in span.events {
            w.message(11) { e in  // Span.events
                e.fixed64(1, event.nanosecondsSinceEpoch)
                e.string(2, event.name)
                attributes(event.attributes, field: 3, into: &e)
            }
        }
        for link in span.links {
            guard let linked = link.context.spanContext else { continue }
            w.message(13) { l in  // Span.links
                l.traceID(1, linked.trace.traceID)
                l.spanID(2, linked.trace.spanID)
                if let state = linked.trace.traceStateHeaderValue { l.string(3, state) }
                attributes(link.attributes, field: 4, into: &l)
            }
        }
        if let status = span.status {
            w.message(15) { s in  // Span.status
                if let message = status.message { s.string(2, message) }
                s.varint(3, status.code == .ok ? 1 : 2)  // STATUS_CODE_OK, STATUS_CODE_ERROR
            }
        }
    }

    /// SpanKind's enum values in trace.proto.
    static func kind(_ kind: SpanKind) -> UInt64 {
        switch kind {
        case .internal: return 1
        case .server: return 2
        case .client: return 3
        case .producer: return 4
        case .consumer: return 5
        }
    }

    static func attributes(_ attributes: SpanAttributes, field: Int, into w: inout ProtoWriter) {
        attributes.forEach { key, value in
            w.message(field) { kv in  // KeyValue
                kv.string(1, key)
                kv.message(2) { anyValue(value, into: &$0) }
            }
        }
    }

    /// An `AnyValue`'s content: string_value 1, bool_value 2, int_value 3, double_value 4,
    /// array_value 5 (ArrayValue.values 1).
    static func anyValue(_ value: SpanAttribute, into w: inout ProtoWriter) {
        func array<T>(_ items: [T], _ each: (T, inout ProtoWriter) -> Void) {
            w.message(5) { a in for item in items { a.message(1) { each(item, &$0) } } }
        }
        switch value {
        case .string(let s): w.string(1, s)
        case .bool(let b): w.varint(2, b ? 1 : 0)
        case .int32(let i): w.varint(3, UInt64(bitPattern: Int64(i)))
        case .int64(let i): w.varint(3, UInt64(bitPattern: i))
        case .double(let d): w.fixed64(4, d.bitPattern)
        case .stringArray(let a): array(a) { $1.string(1, $0) }
        case .boolArray(let a): array(a) { $1.varint(2, $0 ? 1 : 0) }
        case .int32Array(let a): array(a) { $1.varint(3, UInt64(bitPattern: Int64($0))) }
        case .int64Array(let a): array(a) { $1.varint(3, UInt64(bitPattern: $0)) }
        case .doubleArray(let a): array(a) { $1.fixed64(4, $0.bitPattern) }
        case .stringConvertible(let c): w.string(1, c.description)
        case .stringConvertibleArray(let a): array(a) { $1.string(1, $0.description) }
        default: w.string(1, "\(value)")
        }
    }
}

/// Protobuf's wire format, the parts OTLP needs: varints (wire type 0), 64-bit (1),
/// length-delimited (2).
struct ProtoWriter {
    var bytes: [UInt8] = []

    private mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    private mutating func tag(_ field: Int, _ wireType: UInt64) { rawVarint(UInt64(field) << 3 | wireType) }

    mutating func varint(_ field: Int, _ value: UInt64) {
        tag(field, 0)
        rawVarint(value)
    }

    mutating func fixed64(_ field: Int, _ value: UInt64) {
        tag(field, 1)
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func bytes(_ field: Int, _ value: some Collection<UInt8>) {
        tag(field, 2)
        rawVarint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func string(_ field: Int, _ value: String) {
        var value = value
        value.withUTF8 { self.bytes(field, $0) }
    }

    mutating func traceID(_ field: Int, _ id: TraceID) { withUnsafeBytes(of: id.bytes) { self.bytes(field, $0) } }
    mutating func spanID(_ field: Int, _ id: SpanID) { withUnsafeBytes(of: id.bytes) { self.bytes(field, $0) } }

    /// A nested message: written in place after a one-byte length, which is widened when the
    /// body turns out 128 bytes or longer (most are shorter: an attribute, a status).
    mutating func message(_ field: Int, _ body: (inout ProtoWriter) -> Void) {
        tag(field, 2)
        let start = bytes.count
        bytes.append(0)
        body(&self)
        var length = UInt64(bytes.count - start - 1)
        guard length >= 0x80 else {
            bytes[start] = UInt8(length)
            return
        }
        var extra: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0)
        bytes[start] = UInt8(truncatingIfNeeded: length) | 0x80
        length >>= 7
        let count = withUnsafeMutableBytes(of: &extra) { out -> Int in
            var n = 0
            while length >= 0x80 {
                out[n] = UInt8(truncatingIfNeeded: length) | 0x80
                length >>= 7
                n += 1
            }
            out[n] = UInt8(length)
            return n + 1
        }
        withUnsafeBytes(of: extra) { bytes.insert(contentsOf: $0.prefix(count), at: start + 1) }
    }
}
