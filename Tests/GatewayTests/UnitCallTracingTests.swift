import Foundation
@testable import Gateway
import NIOCore
import NIOHTTP1
import Testing

/// The trace context the gateway adds to an MCP request's `params._meta`: inserted as bytes
/// (the rest of the body exactly as the caller wrote it), never over a `_meta` the caller sent,
/// never into a body it cannot read as one request.
@Suite("Unit: trace context in params._meta")
struct UnitCallTracingTests {
    static func traced(_ body: String) -> String? {
        CallTracing.withTraceMeta(
            ByteBuffer(string: body), traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "k=\"v\\\""
        ).map { String(buffer: $0) }
    }

    @Test func insertedFirstInParamsWithTheRestUntouched() throws {
        let body = #"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get-todos","arguments":{"n":12345678901234567890}}}"#
        let out = try #require(Self.traced(body))
        #expect(out.hasPrefix(#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"_meta":{"#))
        #expect(out.hasSuffix(#","name":"get-todos","arguments":{"n":12345678901234567890}}}"#), "numbers stay as written: \(out)")
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        let meta = try #require((parsed["params"] as? [String: Any])?["_meta"] as? [String: String])
        #expect(meta == ["traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "k=\"v\\\""])
    }

    @Test func emptyParamsAndWhitespace() throws {
        let out = try #require(Self.traced(#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params": { } }"#))
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        #expect((parsed["params"] as? [String: Any])?.keys.sorted() == ["_meta"], "\(out)")
    }

    @Test func leftAloneWhenItCannotOrNeedNot() {
        #expect(Self.traced(#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":1},"name":"x"}}"#) == nil)
        #expect(Self.traced(#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#) == nil, "no params: nothing to carry it")
        #expect(Self.traced(#"[{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}]"#) == nil, "a batch")
        #expect(Self.traced(#"{"jsonrpc":"2.0","id":1,"method":"a","method":"b","params":{}}"#) == nil, "ambiguous")
        #expect(Self.traced("not json") == nil)
    }
}
