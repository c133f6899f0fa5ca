import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardTesting
import Testing
import PluginTestKit

/// The proxy's two drivers must be indistinguishable to a caller: each case sends the same
/// request, after a warm-up call, to two gateways built from one connections.yaml in front of
/// one ``ScriptedUpstream`` — one with the event-loop path (Proxy/FastPath/), one with
/// `SWITCHBOARD_FAST_PATH=off` (every call through ``ProxyHandler``) — and expects the same
/// status, body and header list (names, values, order; ``DriverParity/driverHeaders`` aside).
///
/// Which driver answered is checked too, so no case passes with the event-loop path missing:
/// the access log names it (`via=event-loop`; `hand-over` for the 204 and 304 it hands to the
/// async driver and writes back; `async`), the one place the drivers may differ. Both stamp
/// the gateway's own `Date` (never the upstream's, ``ScriptedUpstream/date``).
///
/// `none` connections only: refresh, step-up and consent need a caching plugin and the
/// development IdP, and are in EndToEndTests' `ProxyDriverParityTests`.
@Suite("Proxy drivers: the event-loop path and the async path give the same answer")
struct ProxyDriverParityTests {
    typealias Answer = ProxyFastPathTests.Answer

    enum Case: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case json, large, chunked, sse, notFound, serverError, noContent, notModified, unreachable, timeout

        var testDescription: String { rawValue }

        var method: HTTPMethod {
            switch self {
            case .sse, .serverError: .POST
            default: .GET
            }
        }

        /// At the gateway (see ``connections(upstream:refusingPort:)``).
        var path: String {
            switch self {
            case .json: "/rest/svc/items/7?fields=all"
            case .large: "/rest/svc/large"
            case .chunked: "/rest/svc/chunked"
            case .sse: "/mcp/tools"
            case .notFound: "/rest/svc/missing"
            case .serverError: "/rest/svc/explode"
            case .unreachable: "/rest/down/items/7"
            case .timeout: "/rest/slow/sleepy"
            case .noContent: "/rest/svc/nocontent"
            case .notModified: "/rest/svc/notmodified"
            }
        }

        var body: String? {
            switch self {
            case .sse: #"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#
            case .serverError: #"{"x":1}"#
            default: nil
            }
        }

        var headers: [(String, String)] {
            body == nil ? [("Accept", "application/json")] : [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")]
        }

        /// The connection the access log names.
        var connection: String {
            switch self {
            case .sse: "tools"
            case .unreachable: "down"
            case .timeout: "slow"
            default: "svc"
            }
        }

        var status: Int {
            switch self {
            case .notFound: 404
            case .serverError: 500
            case .unreachable: 502
            case .timeout: 504
            case .noContent: 204
            case .notModified: 304
            default: 200
            }
        }

        /// An answer the event-loop path hands over to the async path for its framing (it is
        /// written back by the event-loop handler, but logged by the async path).
        var handedOver: Bool { self == .noContent || self == .notModified }

        /// The gateway's own error code, for answers the upstream did not give.
        var gatewayError: String? {
            switch self {
            case .unreachable: "upstream_unreachable"
            case .timeout: "upstream_timeout"
            default: nil
            }
        }
    }

    // MARK: The upstream

    /// Headers on every scripted answer: two fields of one name (order must hold), a name in
    /// mixed case (its spelling must hold), and a cookie and hop-by-hop fields that must not
    /// reach the caller.
    static let upstreamHeaders: [(String, String)] = [
        ("Cache-Control", "no-cache"), ("X-Multi", "one"), ("X-Multi", "two"), ("x-MiXeD-Case", "Kept As Is"), ("ETag", "\"v1\""),
        ("Set-Cookie", "upstream=1"), ("Keep-Alive", "timeout=30"), ("Connection", "keep-alive, X-Up-Hop"), ("X-Up-Hop", "1"),
    ]

    static let jsonBody = #"{"id":7,"items":[1,2,3],"title":"ünïcode"}"#
    static let largeSize = 300 * 1024
    static let chunkedPieces = [#"{"line":1}"# + "\n", #"{"line":2}"# + "\n", #"{"line":3,"last":true}"# + "\n"]
    static let sseEvents = [
        "id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"n\":1}}\n\n",
        "id: 2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"n\":2}}\n\n",
        "id: 3\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[{\"name\":\"t1\"}]}}\n\n",
    ]
    static let notFoundBody = #"{"error":"no such item"}"#

    /// The upstream's answer to each case, by the last segment of the path it receives (the
    /// warm-up call and anything else: 200 `warm`).
    static let script: ScriptedUpstream.Script = { request in
        let pause = ScriptedUpstream.Piece.pause(.milliseconds(80))
        switch request.path.split(separator: "/").last {
        case "7":
            return .init(headers: [("Content-Type", "application/json")] + upstreamHeaders, content: .whole(ByteBuffer(string: jsonBody)))
        case "large":
            return .init(headers: [("Content-Type", "application/octet-stream")] + upstreamHeaders, content: .whole(ProxyFastPathTests.pattern(largeSize)))
        case "chunked":
            let pieces = chunkedPieces.flatMap { [ScriptedUpstream.Piece.data(ByteBuffer(string: $0)), pause] }.dropLast()
            return .init(headers: [("Content-Type", "application/x-ndjson")] + upstreamHeaders, content: .chunked(Array(pieces)))
        case "mcp":
            let pieces = sseEvents.flatMap { [ScriptedUpstream.Piece.data(ByteBuffer(string: $0)), pause] }.dropLast()
            return .init(headers: [("Content-Type", "text/event-stream")] + upstreamHeaders, content: .chunked(Array(pieces)))
        case "missing":
            return .init(status: 404, headers: [("Content-Type", "application/json")] + upstreamHeaders, content: .whole(ByteBuffer(string: notFoundBody)))
        case "explode":
            return .text("boom", status: 500, headers: upstreamHeaders)
        case "nocontent":
            return .init(status: 204, headers: upstreamHeaders, content: .whole(ByteBuffer()))
        case "notmodified":
            return .init(status: 304, headers: upstreamHeaders, content: .whole(ByteBuffer()))
        case "sleepy":
            return .text("too late", headers: upstreamHeaders, delay: .seconds(2))
        default:
            return .text("warm")
        }
    }

    /// What the upstream sent as the body for `c` (nil: the gateway answers itself).
    static func upstreamBody(_ c: Case) -> ByteBuffer? {
        switch c {
        case .json: ByteBuffer(string: jsonBody)
        case .large: ProxyFastPathTests.pattern(largeSize)
        case .chunked: ByteBuffer(string: chunkedPieces.joined())
        case .sse: ByteBuffer(string: sseEvents.joined())
        case .notFound: ByteBuffer(string: notFoundBody)
        case .serverError: ByteBuffer(string: "boom")
        case .noContent, .notModified: ByteBuffer()
        case .unreachable, .timeout: nil
        }
    }

    // MARK: The gateways

    /// `svc` (REST) and `tools` (MCP) on the upstream, `slow` (REST, 300 ms to the answer's
    /// head) on it too, `down` on a port that refuses connections; all `none`.
    static func connections(upstream: ScriptedUpstream, refusingPort: Int) -> String {
        """
          - name: svc
            kind: application
            upstream: \(upstream.baseURL)/base
            auth: { strategy: none }
          - name: tools
            kind: mcp_server
            upstream: \(upstream.baseURL)/mcp
            auth: { strategy: none }
          - name: slow
            kind: application
            upstream: \(upstream.baseURL)/base
            timeouts: { response: 300ms }
            auth: { strategy: none }
          - name: down
            kind: application
            upstream: http://127.0.0.1:\(refusingPort)/base
            auth: { strategy: none }
        """
    }

    /// One gateway and the log of its access lines.
    struct Driver {
        var gateway: GatewayHarness
        var log: CapturingLog
        var eventLoop: Bool
    }

    /// A fresh upstream, a refusing port, and the two gateways: event-loop path on, then off.
    static func withDrivers(_ body: (ScriptedUpstream, [Driver]) async throws -> Void) async throws {
        let refusing = try ReservedPort()
        try await withUpstream { upstream in
            let yaml = connections(upstream: upstream, refusingPort: refusing.port)
            let fastLog = CapturingLog()
            let fast = try await GatewayHarness.start(connections: yaml, log: fastLog)
            try await withCleanup({
                let slowLog = CapturingLog()
                let slow = try await GatewayHarness.start(connections: yaml, environment: ProxyFastPathTests.fastPathOff, log: slowLog)
                try await withCleanup({
                    try await body(upstream, [Driver(gateway: fast, log: fastLog, eventLoop: true), Driver(gateway: slow, log: slowLog, eventLoop: false)])
                }, cleanup: { await slow.stop() })
            }, cleanup: { await fast.stop() })
        }
        withExtendedLifetime(refusing) {}
    }

    /// A ``ScriptedUpstream`` playing ``script``, stopped after `body`.
    static func withUpstream(_ body: (ScriptedUpstream) async throws -> Void) async throws {
        let upstream = try await ScriptedUpstream.start(script)
        try await withCleanup({ try await body(upstream) }, cleanup: { await upstream.stop() })
    }

    // MARK: The cases

    @Test("the same request through both drivers, after a warm-up call: same status, body and header list", arguments: Case.allCases)
    func sameAnswer(_ c: Case) async throws {
        try await Self.withDrivers { _, drivers in
            var answers: [Answer] = []
            for driver in drivers {
                let gw = driver.gateway
                let token = try await ProxyFastPathTests.warmUp(gw, token: gw.token(), fastPath: driver.eventLoop)
                let answer = try await ProxyFastPathTests.call(gw.baseURL, c.path, token: token, method: c.method, body: c.body, headers: c.headers, deadline: .seconds(20))
                answers.append(answer)
                try await Self.expectDriver(driver, answered: answer, c)
            }
            let (a, b) = (answers[0], answers[1])
            #expect(a.status == b.status, "\(c): \(a.status) with the event-loop path, \(b.status) without")
            #expect(a.buffer == b.buffer, "\(c): the bodies differ:\n  event loop: \(a.body.prefix(300))\n  async:      \(b.body.prefix(300))")
            #expect(DriverParity.headerList(a.headers) == DriverParity.headerList(b.headers),
                    "\(c): the header lists differ:\n  event loop: \(DriverParity.headerList(a.headers))\n  async:      \(DriverParity.headerList(b.headers))")
            for (answer, driver) in zip(answers, ["event loop", "async"]) {
                try Self.expectAnswer(answer, c, driver)
            }
        }
    }

    /// The driver that should have answered did: the access line of the call says so.
    static func expectDriver(_ driver: Driver, answered answer: Answer, _ c: Case) async throws {
        let label = "\(c), event-loop path \(driver.eventLoop ? "on" : "off")"
        // A relayed stream is logged when it ends: give the line a moment.
        let status = String(c.status)
        let logged = await ProxyFastPathTests.eventually(within: .seconds(5)) {
            ProxyFastPathTests.accessLine(driver.log, connection: c.connection, status: status, error: c.gatewayError) != nil
        }
        try #require(logged, "\(label): no access log line")
        let line = ProxyFastPathTests.accessLine(driver.log, connection: c.connection, status: status, error: c.gatewayError)
        let expected = driver.eventLoop ? (c.handedOver ? "hand-over" : "event-loop") : "async"
        #expect(line?.metadata["via"] == expected, "\(label): \(line?.metadata ?? [:])")
    }

    /// What the caller must get for `c`, whichever driver answered.
    static func expectAnswer(_ answer: Answer, _ c: Case, _ driver: String) throws {
        let label = "\(c) (\(driver))"
        #expect(answer.status == c.status, "\(label): \(answer.status) \(answer.body.prefix(200))")
        #expect(answer.headers.first(name: "server") == "switchboard", "\(label)")
        let date = answer.headers.first(name: "date") ?? ""
        #expect(date.hasSuffix(" GMT") && date != ScriptedUpstream.date, "\(label): the gateway's own Date, not the upstream's: \(date)")
        if let code = c.gatewayError {
            #expect(answer.json["error"] as? String == code, "\(label): \(answer.body)")
            #expect(answer.json["connection"] as? String == c.connection, "\(label): \(answer.body)")
            #expect(answer.headers.first(name: "content-type") == "application/json", "\(label)")
            return
        }
        let expected = try #require(upstreamBody(c))
        #expect(answer.buffer == expected, "\(label): the body is not the upstream's (\(answer.buffer.readableBytes) bytes, \(expected.readableBytes) sent)")
        #expect(answer.headers["x-multi"] == ["one", "two"], "\(label): \(answer.headers)")
        #expect(answer.headers.contains { $0.name == "x-MiXeD-Case" && $0.value == "Kept As Is" }, "\(label): \(answer.headers)")
        for gone in ["set-cookie", "keep-alive", "x-up-hop"] {
            #expect(!answer.headers.contains(name: gone), "\(label): \(gone) reached the caller")
        }
        switch c {
        case .chunked, .sse:
            // Sent chunked: no length made up on the way.
            #expect(answer.headers.first(name: "transfer-encoding") == "chunked" && !answer.headers.contains(name: "content-length"), "\(label): \(answer.headers)")
        case .noContent, .notModified:
            // No body, and no framing for one (RFC 9110 §8.6, RFC 9112 §6.1).
            #expect(!answer.headers.contains(name: "transfer-encoding") && !answer.headers.contains(name: "content-length"), "\(label): \(answer.headers)")
        default:
            #expect(answer.headers.first(name: "content-length") == String(expected.readableBytes), "\(label): \(answer.headers)")
        }
    }
}
