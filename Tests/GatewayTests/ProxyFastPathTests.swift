import AsyncHTTPClient
import Foundation
import Gateway
import Logging
import NIOCore
import NIOHTTP1
import NIOConcurrencyHelpers
import ServiceLifecycle
import StandardPlugins
import SwitchboardTesting
import Testing
import PluginTestKit

/// The proxy's event-loop path (Proxy/FastPath/): warm calls (ID token already verified,
/// credential cached, small body, plain-HTTP upstream) forwarded by a channel handler, and
/// answers that need the async path's logic handed over to it, through a real gateway on
/// loopback against a ``ScriptedUpstream``.
///
/// Both drivers write the same bytes (``ResponseShaper``), so which one ran a call shows only in
/// the gateway's access log (``AccessLog``: `via=event-loop`, `hand-over` or `async`). Every
/// test checks it, so none passes with the fast path missing.
@Suite("Proxy fast path: warm calls answered on the event loop")
struct ProxyFastPathTests {
    // MARK: The upstream

    /// What ``script`` answers, by the last path segment (`ms=N` in the query delays the head by N ms):
    /// - `big?size=N`: N bytes of ``pattern(_:)``, with `Content-Length`.
    /// - `fill?size=N`: N bytes `a` (cheap to make at 100 MiB), with `Content-Length`.
    /// - `sse?pause_ms=N`: `text/event-stream`, chunked: ``sseFirst``, a pause of N ms (default 2000), ``sseRest``.
    /// - `broken`: `text/event-stream`, chunked: ``sseFirst``, then the connection closes mid-answer.
    /// - anything else: JSON `{method, uri, body, tag}` (`tag`: the request's `X-Tag`, also
    ///   sent back as `X-Echo-Tag`), with status `status=N` (default 200), a `Set-Cookie`, a
    ///   `Keep-Alive` and a header listed in `Connection` that must not reach the caller.
    static let script: ScriptedUpstream.Script = { request in
        let query = parameters(request.query)
        let delay = Duration.milliseconds(Int(query["ms"] ?? "") ?? 0)
        switch request.path.split(separator: "/").last {
        case "big":
            let size = Int(query["size"] ?? "") ?? 0
            return .init(headers: [("Content-Type", "application/octet-stream")], content: .whole(pattern(size)), delay: delay)
        case "fill":
            let size = Int(query["size"] ?? "") ?? 0
            return .init(headers: [("Content-Type", "application/octet-stream")], content: .whole(ByteBuffer(repeating: UInt8(ascii: "a"), count: size)), delay: delay)
        case "broken":
            let pieces: [ScriptedUpstream.Piece] = [.data(ByteBuffer(string: sseFirst)), .pause(.milliseconds(100)), .close]
            return .init(headers: [("Content-Type", "text/event-stream")], content: .chunked(pieces), delay: delay)
        case "sse":
            let pause = Duration.milliseconds(Int(query["pause_ms"] ?? "") ?? 2000)
            let pieces: [ScriptedUpstream.Piece] = [.data(ByteBuffer(string: sseFirst)), .pause(pause), .data(ByteBuffer(string: sseRest))]
            return .init(headers: [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")], content: .chunked(pieces), delay: delay)
        default:
            let echo: [String: String] = [
                "method": request.method, "uri": request.uri, "body": String(buffer: request.body), "tag": request.header("x-tag") ?? "",
            ]
            let data = (try? JSONSerialization.data(withJSONObject: echo, options: [.sortedKeys])) ?? Data()
            return .init(
                status: Int(query["status"] ?? "") ?? 200,
                headers: [
                    ("Content-Type", "application/json"), ("X-Echo-Tag", request.header("x-tag") ?? ""), ("Set-Cookie", "upstream=1"),
                    ("Keep-Alive", "timeout=30"), ("Connection", "keep-alive, X-Up-Hop"), ("X-Up-Hop", "1"),
                ],
                content: .whole(ByteBuffer(bytes: data)), delay: delay)
        }
    }

    static let sseFirst = "id: 1\nevent: message\ndata: {\"n\":1}\n\n"
    static let sseRest = "id: 2\nevent: message\ndata: {\"n\":2}\n\nid: 3\nevent: message\ndata: {\"done\":true}\n\n"

    /// `size` bytes that change from one position to the next (a shifted or dropped chunk shows).
    static func pattern(_ size: Int) -> ByteBuffer {
        ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0 % 251) })
    }

    static func parameters(_ query: String?) -> [String: String] {
        var out: [String: String] = [:]
        for pair in (query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            out[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return out
    }

    // MARK: The gateway

    /// `svc` (REST, `/rest/svc/…` → `<upstream>/base/…`) and `tools` (MCP, `/mcp/tools` → `<upstream>/mcp`), both `none`.
    static func connections(_ upstream: ScriptedUpstream) -> String {
        """
          - name: svc
            kind: application
            upstream: \(upstream.baseURL)/base
            auth: { strategy: none }
          - name: tools
            kind: mcp_server
            upstream: \(upstream.baseURL)/mcp
            auth: { strategy: none }
        """
    }

    /// The environment that turns the event-loop path off.
    static let fastPathOff = ["SWITCHBOARD_FAST_PATH": "off"]

    /// Runs `body`, then `cleanup`, whether `body` threw or not.
    static func withUpstream(_ body: (ScriptedUpstream) async throws -> Void) async throws {
        let upstream = try await ScriptedUpstream.start(script)
        try await withCleanup({ try await body(upstream) }, cleanup: { await upstream.stop() })
    }

    /// A gateway in front of `upstream`. `gateway`: a whole `gateway:` block.
    static func withGateway(
        for upstream: ScriptedUpstream, gateway: String = "", environment: [String: String] = [:], log: CapturingLog? = nil,
        _ body: (GatewayHarness) async throws -> Void
    ) async throws {
        let harness = try await GatewayHarness.start(connections: connections(upstream), gateway: gateway, environment: environment, log: log)
        try await withCleanup({ try await body(harness) }, cleanup: { await harness.stop() })
    }

    /// A fresh upstream and a gateway in front of it.
    static func withSetup(
        gateway: String = "", environment: [String: String] = [:], log: CapturingLog? = nil, _ body: (GatewayHarness, ScriptedUpstream) async throws -> Void
    ) async throws {
        try await withUpstream { upstream in
            try await withGateway(for: upstream, gateway: gateway, environment: environment, log: log) { gw in try await body(gw, upstream) }
        }
    }

    typealias Answer = HTTPAnswer

    /// One call with `token` (the same string on every call: the gateway's cache of verified
    /// tokens is keyed by it), answer read whole.
    static func call(
        _ baseURL: String, _ path: String, token: String, method: HTTPMethod = .GET, body: String? = nil, headers: [(String, String)] = [],
        deadline: Duration = .seconds(15)
    ) async throws -> Answer {
        try await TestHTTP.send(
            method, baseURL + path, headers: [("Authorization", "Bearer " + token)] + headers, body: body, client: HTTPClient.shared, timeout: deadline)
    }

    /// Whether the event-loop handler wrote the answer of the `number`-th call to end (its
    /// driver `event-loop`, or `hand-over`: the async driver's answer written back by it).
    static func eventLoopWrote(_ log: AccessLog, call number: Int) async -> Bool {
        guard let via = await log.driver(ofCall: number) else { return false }
        return AccessLog.eventLoopHandler.contains(via)
    }

    /// The driver a warm call on a `none` connection takes.
    static func warmDriver(fastPath: Bool) -> String { fastPath ? "event-loop" : "async" }

    /// The first call with `token` on a gateway, which verifies and caches it. Returns the token.
    @discardableResult
    static func warmUp(_ gw: GatewayHarness, token: String, fastPath: Bool = true) async throws -> String {
        try await warmUp(gw.baseURL, log: gw.accessLog, token: token, fastPath: fastPath)
    }

    @discardableResult
    static func warmUp(_ baseURL: String, log: AccessLog, token: String, fastPath: Bool = true) async throws -> String {
        let first = try await call(baseURL, "/rest/svc/warm-up", token: token)
        try #require(first.status == 200, "warm-up call: \(first.status) \(first.body)")
        // `none` needs no plugin call: the event-loop path verifies the token on the way.
        #expect(await log.driver(ofCall: 1) == warmDriver(fastPath: fastPath), "a first call on a `none` connection, fast path \(fastPath ? "on" : "off")")
        return token
    }

    /// A request for a ``PipeliningClient``, with `token`.
    static func request(_ target: String, method: HTTPMethod = .GET, token: String, headers: [(String, String)] = [], body: String? = nil) -> PipeliningClient.Request {
        PipeliningClient.Request(method: method, target: target, headers: [("Host", "gateway.test"), ("Authorization", "Bearer \(token)")] + headers, body: body)
    }

    /// A raw connection to `port`, closed after `body`.
    static func withRawConnection<T>(_ port: Int, _ body: (PipeliningClient) async throws -> T) async throws -> T {
        let client = try await PipeliningClient.connect(port: port)
        return try await withCleanup({ try await body(client) }, cleanup: { await client.close() })
    }

    /// Whether `condition` held within `deadline` (polled every 20 ms).
    static func eventually(within deadline: Duration, _ condition: () -> Bool) async -> Bool {
        let start = ContinuousClock.now
        while !condition() {
            if ContinuousClock.now - start > deadline { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// The echo's JSON fields.
    static func echo(_ text: String) -> [String: String] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: String] ?? [:]
    }

    // MARK: 0. Which path

    /// A warm-up call, then three calls: each on the event-loop path when `fastPath`.
    static func expectPath(fastPath: Bool, baseURL: String, log: AccessLog, token: String) async throws {
        try await warmUp(baseURL, log: log, token: token, fastPath: fastPath)
        for i in 0..<3 {
            let r = try await call(baseURL, "/rest/svc/x?i=\(i)", token: token)
            #expect(r.status == 200)
            #expect(echo(r.body)["uri"] == "/base/x?i=\(i)")
            #expect(await log.driver(ofCall: 2 + i) == warmDriver(fastPath: fastPath), "call \(i), fast path \(fastPath ? "on" : "off")")
        }
    }

    @Test("calls on a `none` connection take the event-loop path, the first one too; none with SWITCHBOARD_FAST_PATH=off", arguments: [true, false])
    func warmCallsTakeTheEventLoopPath(fastPath: Bool) async throws {
        try await Self.withSetup(environment: fastPath ? [:] : Self.fastPathOff) { gw, _ in
            try await Self.expectPath(fastPath: fastPath, baseURL: gw.baseURL, log: gw.accessLog, token: gw.token())
        }
    }

    @Test("GatewayOptions.fastPath = false: every call takes the async path")
    func fastPathOptionOff() async throws {
        try await Self.withUpstream { upstream in
            let gateway = try await DirectGateway.start(connections: Self.connections(upstream), fastPath: false)
            try await withCleanup({
                try await Self.expectPath(fastPath: false, baseURL: gateway.baseURL, log: gateway.accessLog, token: gateway.token)
            }, cleanup: { await gateway.stop() })
        }
    }

    @Test("a burst of first calls with one new token: every call answered on the event loop, token verified on the way")
    func burstOfFirstCallsSharesOneVerification() async throws {
        try await Self.withSetup { gw, upstream in
            let token = gw.token()
            let answers = try await withThrowingTaskGroup(of: Answer.self) { group in
                for i in 0..<100 { group.addTask { try await Self.call(gw.baseURL, "/rest/svc/burst?i=\(i)", token: token) } }
                return try await group.reduce(into: [Answer]()) { $0.append($1) }
            }
            #expect(answers.count == 100)
            #expect(answers.allSatisfy { $0.status == 200 }, "\(answers.map(\.status))")
            let drivers = await gw.accessLog.drivers(ofCalls: 100)
            #expect(drivers.count == 100 && drivers.allSatisfy { $0 == "event-loop" }, "first calls on a `none` connection wait for the one verification, not for the async path: \(drivers)")
            #expect(upstream.requests.count == 100)
            #expect(upstream.requests.allSatisfy { $0.header("authorization") == nil }, "the user's ID token never reaches the upstream")
        }
    }

    @Test("a bad token on a request the event-loop path takes gets the async path's 401, and nothing reaches the upstream")
    func badTokenOnTheEventLoopPathIsRefused() async throws {
        try await Self.withSetup { gw, upstream in
            for token in [gw.issuer.idToken(audience: "someone-else"), "not-a-jwt"] {
                let r = try await Self.call(gw.baseURL, "/rest/svc/x", token: token)
                #expect(r.status == 401, "\(r.body)")
                #expect(r.json["error"] as? String == "invalid_user_token", "\(r.body)")
                #expect(r.headers.first(name: "www-authenticate")?.hasPrefix("Bearer") == true)
                #expect(!r.body.contains(token))
            }
            #expect(upstream.requests.isEmpty)
        }
    }

    // MARK: 1. Pipelining

    /// Request `i` of ``pipelinedWarmRequestsAreAnsweredInOrder(count:)``: GETs and POSTs by
    /// turn, the first one slow (answers written as they complete would come out of order).
    static func pipelined(_ i: Int, token: String) -> (request: PipeliningClient.Request, echo: [String: String]) {
        let tag = "t\(i)"
        if i % 2 == 1 {
            let body = #"{"n":\#(i)}"#
            let request = Self.request("/rest/svc/post/\(i)", method: .POST, token: token, headers: [("X-Tag", tag), ("Content-Type", "application/json")], body: body)
            return (request, ["tag": tag, "method": "POST", "uri": "/base/post/\(i)", "body": body])
        }
        let target = i == 0 ? "get?n=0&ms=400" : "get?n=\(i)"
        return (Self.request("/rest/svc/" + target, token: token, headers: [("X-Tag", tag)]), ["tag": tag, "method": "GET", "uri": "/base/" + target, "body": ""])
    }

    @Test("warm requests in one write get their answers, in order, each its own", arguments: [3, 40])
    func pipelinedWarmRequestsAreAnsweredInOrder(count: Int) async throws {
        try await Self.withSetup { gw, upstream in
            let token = try await Self.warmUp(gw, token: gw.token())
            let cases = (0..<count).map { Self.pipelined($0, token: token) }
            let answers = try await Self.withRawConnection(gw.server.port) { client in
                try await client.send(cases.map(\.request))
                return try await client.next(count)
            }
            #expect(answers.count == count, "\(answers.count) answers to \(count) requests")
            for (i, (answer, expected)) in zip(answers, cases.map(\.echo)).enumerated() {
                #expect(answer.status == 200, "answer \(i): \(answer)")
                #expect(answer.headers.first(name: "x-echo-tag") == expected["tag"], "answer \(i): \(answer)")
                #expect(Self.echo(answer.body) == expected, "answer \(i): \(answer)")
            }
            let drivers = await gw.accessLog.drivers(ofCalls: count + 1)
            #expect(drivers == Array(repeating: "event-loop", count: count + 1), "warm-up and \(count) pipelined calls: \(drivers)")
            #expect(upstream.requests.dropFirst().map { $0.header("x-tag") } == cases.map(\.echo["tag"]))
        }
    }

    @Test("warm requests pipelined with requests for the async path (unknown route, body over max_replay_body): answers in order")
    func pipelinedMixOfEventLoopAndAsyncRequestsStaysInOrder() async throws {
        try await Self.withSetup(gateway: """
            gateway:
              limits:
                max_replay_body: 1KiB
            """) { gw, upstream in
            let token = try await Self.warmUp(gw, token: gw.token())
            let large = String(repeating: "L", count: 2000)
            let requests = [
                Self.request("/rest/svc/one?ms=300", token: token, headers: [("X-Tag", "1")]),
                Self.request("/rest/nowhere/x", token: token, headers: [("X-Tag", "2")]),
                Self.request("/rest/svc/three", token: token, headers: [("X-Tag", "3")]),
                Self.request("/rest/svc/four", method: .POST, token: token, headers: [("X-Tag", "4")], body: large),
                Self.request("/rest/svc/five", token: token, headers: [("X-Tag", "5")]),
            ]
            let answers = try await Self.withRawConnection(gw.server.port) { client in
                try await client.send(requests)
                return try await client.next(5)
            }
            #expect(answers.count == 5, "\(answers.count) answers to 5 requests, the last: \(answers.last.map { "\($0)" } ?? "none")")
            let expected: [(status: Int, tag: String?)] = [(200, "1"), (404, nil), (200, "3"), (200, "4"), (200, "5")]
            #expect(answers.map(\.status) == expected.prefix(answers.count).map(\.status), "\(answers)")
            #expect(answers.map { Self.echo($0.body)["tag"] } == expected.prefix(answers.count).map(\.tag), "\(answers)")
            // The warm-up, then the first request (the unknown route leaves no line: no connection).
            let drivers = await gw.accessLog.drivers(ofCalls: 5)
            #expect(drivers.count == 5 && drivers[1] == "event-loop", "the first request is warm: the event-loop driver's: \(drivers)")
            if answers.count > 1 { #expect(jsonObject(answers[1].body)["error"] as? String == "unknown_connection", "\(answers[1])") }
            if answers.count > 3 { #expect(Self.echo(answers[3].body)["body"] == large, "the large body must reach the upstream whole") }
            #expect(upstream.requests.dropFirst().map { $0.header("x-tag") } == ["1", "3", "4", "5"])
        }
    }

    /// Not pipelining: the client waits for each answer before it sends the next request.
    /// An answer the async path built (here a streamed one, over 64 KiB) is written back by
    /// the event-loop handler, which takes the next request only once that answer is out; a
    /// next request for Hummingbird (here `/healthz`) arriving in between must still be answered.
    @Test("a keep-alive client's next request for Hummingbird, sent as soon as an answer written by the async path arrived, is answered")
    func requestForHummingbirdRightAfterAnAsyncAnswer() async throws {
        try await Self.withSetup { gw, _ in
            let token = try await Self.warmUp(gw, token: gw.token())
            try await Self.withRawConnection(gw.server.port) { client in
                for round in 0..<5 {
                    try await client.sendOnNextAnswer(Self.request("/healthz", token: token))
                    try await client.send([Self.request("/rest/svc/big?size=70000", token: token)])
                    let streamed = try #require(try await client.next(), "round \(round): the connection closed")
                    #expect(streamed.status == 200 && streamed.buffer.readableBytes == 70_000, "round \(round): \(streamed.status)")
                    #expect(await Self.eventLoopWrote(gw.accessLog, call: 2 + round), "round \(round)")
                    let health: PipeliningClient.Response?
                    do {
                        health = try await client.next(within: .seconds(10))
                    } catch {
                        Issue.record("round \(round): GET /healthz, sent as the streamed answer ended, got no answer within 10 s")
                        return
                    }
                    #expect(health?.status == 200, "round \(round): \(health.map { "\($0)" } ?? "connection closed")")
                }
            }
        }
    }

    // MARK: 2. Same answer both ways

    /// The requests of ``sameAnswersWithAndWithoutTheFastPath()``, with the status the upstream
    /// answers: REST with a path remainder and a query, REST with a JSON body, MCP, and
    /// upstream errors; each with headers that must not cross.
    static let comparedRequests: [(method: HTTPMethod, path: String, body: String?, status: Int)] = [
        (.GET, "/rest/svc/repos/acme/app/pulls?state=open&page=2", nil, 200),
        (.POST, "/rest/svc/items/7", #"{"done":true,"title":"ünïcode"}"#, 200),
        (.POST, "/mcp/tools", #"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#, 200),
        (.DELETE, "/rest/svc/items/8?status=404", nil, 404),
        (.PUT, "/rest/svc/items/9?status=500", #"{"x":1}"#, 500),
    ]

    static let callerHeaders: [(String, String)] = [
        ("Content-Type", "application/json"), ("X-Tag", "same"), ("Cookie", "session=secret-cookie"), ("Connection", "keep-alive, X-Hop"),
        ("X-Hop", "dropped"), ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Proxy-Authorization", "Basic eDp5"),
        ("X-Forwarded-For", "6.6.6.6"), ("Forwarded", "for=6.6.6.6"), ("Accept", "application/json, text/event-stream"),
    ]

    /// Header fields, names lowercased, without `date`, in a canonical order (same-name fields keep theirs).
    static func comparable(_ headers: [(name: String, value: String)]) -> [String] {
        headers.map { ($0.name.lowercased(), $0.value) }.filter { $0.0 != "date" }.sorted { $0.0 < $1.0 }.map { "\($0.0): \($0.1)" }
    }

    /// What the caller must get back for one of ``comparedRequests``.
    static func expectAnswer(_ answer: Answer, status: Int, _ path: String) {
        #expect(answer.status == status, "\(path): \(answer.status) \(answer.body)")
        #expect(answer.headers.first(name: "server") == "switchboard", "\(path)")
        #expect(answer.headers.first(name: "content-length") == String(answer.buffer.readableBytes), "\(path)")
        #expect(answer.headers.first(name: "x-echo-tag") == "same", "\(path)")
        for gone in ["set-cookie", "x-up-hop", "keep-alive"] {
            #expect(answer.headers.first(name: gone) == nil, "\(path): \(gone) reached the caller")
        }
    }

    /// What the upstream must receive for one of ``comparedRequests``.
    static func expectForwarded(_ seen: ScriptedUpstream.Request, method: HTTPMethod, body: String?, upstream: ScriptedUpstream, tokens: [String], _ path: String) {
        #expect(seen.method == method.rawValue, "\(path)")
        #expect(String(buffer: seen.body) == (body ?? ""), "\(path)")
        #expect(seen.header("host") == "127.0.0.1:\(upstream.port)", "\(path)")
        #expect(seen.header("x-tag") == "same", "\(path)")
        #expect(seen.header("content-type") == "application/json", "\(path)")
        #expect(seen.header("accept") == "application/json, text/event-stream", "\(path)")
        for gone in ["authorization", "cookie", "x-hop", "keep-alive", "te", "proxy-authorization", "x-forwarded-for", "forwarded"] {
            #expect(seen.header(gone) == nil, "\(path): \(gone) reached the upstream")
        }
        #expect(!seen.headers.contains { header in tokens.contains { header.value.contains($0) } }, "\(path): an ID token reached the upstream")
    }

    @Test("the same requests through a gateway with and one without the fast path: same answers, same upstream requests")
    func sameAnswersWithAndWithoutTheFastPath() async throws {
        try await Self.withUpstream { upstream in
            try await Self.withGateway(for: upstream) { fast in
                try await Self.withGateway(for: upstream, environment: Self.fastPathOff) { slow in
                    let tokens = [
                        try await Self.warmUp(fast, token: fast.token()), try await Self.warmUp(slow, token: slow.token(), fastPath: false),
                    ]
                    for (k, (method, path, body, status)) in Self.comparedRequests.enumerated() {
                        let a = try await Self.call(fast.baseURL, path, token: tokens[0], method: method, body: body, headers: Self.callerHeaders)
                        let seenA = try #require(upstream.requests.last)
                        let b = try await Self.call(slow.baseURL, path, token: tokens[1], method: method, body: body, headers: Self.callerHeaders)
                        let seenB = try #require(upstream.requests.last)
                        #expect(await Self.eventLoopWrote(fast.accessLog, call: 2 + k), "\(path): the fast gateway's warm call")
                        #expect(await slow.accessLog.driver(ofCall: 2 + k) == "async", "\(path): the gateway without the fast path")

                        #expect(a.status == b.status, "\(path)")
                        #expect(a.buffer == b.buffer, "\(path): \(a.body) vs \(b.body)")
                        #expect(Self.comparable(Array(a.headers)) == Self.comparable(Array(b.headers)), "\(path)")
                        Self.expectAnswer(a, status: status, path)
                        Self.expectAnswer(b, status: status, path)

                        #expect(seenA.uri == seenB.uri, "\(path)")
                        #expect(seenA.body == seenB.body, "\(path)")
                        #expect(Self.comparable(seenA.headers) == Self.comparable(seenB.headers), "\(path)")
                        Self.expectForwarded(seenA, method: method, body: body, upstream: upstream, tokens: tokens, path)
                        Self.expectForwarded(seenB, method: method, body: body, upstream: upstream, tokens: tokens, path)
                    }
                    let uris = upstream.requests.map(\.uri)
                    #expect(uris.filter { $0 == "/base/repos/acme/app/pulls?state=open&page=2" }.count == 2)
                    #expect(uris.filter { $0 == "/mcp" }.count == 2)
                }
            }
        }
    }

    // MARK: 3. Errors on warm calls

    @Test("warm call to an upstream that went away: 502 upstream_unreachable, and the status shows it")
    func unreachableUpstreamOnAWarmCall() async throws {
        try await Self.withSetup { gw, upstream in
            let token = try await Self.warmUp(gw, token: gw.token())
            let warm = try await Self.call(gw.baseURL, "/rest/svc/x", token: token)
            #expect(warm.status == 200, "\(warm.status) \(warm.body)")
            #expect(await gw.accessLog.driver(ofCall: 2) == "event-loop")
            await upstream.stop()  // listener and the kept connection
            let r = try await Self.call(gw.baseURL, "/rest/svc/x", token: token)
            #expect(r.status == 502, "\(r.status) \(r.body)")
            #expect(r.json["error"] as? String == "upstream_unreachable", "\(r.body)")
            #expect(r.json["connection"] as? String == "svc", "\(r.body)")
            #expect(r.headers.first(name: "content-type") == "application/json")
            #expect(r.headers.first(name: "server") == "switchboard")
            #expect(r.headers.first(name: "date")?.hasSuffix(" GMT") == true, "the gateway's own answers are dated (RFC 9110 §6.6.1)")
            let card = try #require(try await gw.connectionStatus("svc"))
            #expect(card["status"] as? String == "ERROR", "\(card)")
            #expect((card["last_error"] as? [String: Any])?["code"] as? String == "upstream_unreachable", "\(card)")
            #expect(try await gw.send(.GET, "/healthz").status == 200)
        }
    }

    // MARK: 4. Clients that leave

    /// One upstream connection allowed: a call abandoned while it held it must give it back.
    static let oneUpstreamConnection = """
        gateway:
          limits:
            max_connections_per_upstream: 1
        """

    /// Five calls in a row, each answered (on the event-loop path) within 10 s.
    static func expectUsable(_ gw: GatewayHarness, token: String) async throws {
        func answeredOnTheEventLoop() -> Int {
            gw.accessLog.lines.filter { $0.metadata["via"] == "event-loop" && $0.metadata["status"] == "200" && $0.metadata["error"] == nil }.count
        }
        let before = answeredOnTheEventLoop()
        for i in 0..<5 {
            let r = try await call(gw.baseURL, "/rest/svc/after?i=\(i)", token: token, deadline: .seconds(10))
            #expect(r.status == 200, "call \(i) after the client left: \(r.status) \(r.body)")
            #expect(echo(r.body)["uri"] == "/base/after?i=\(i)", "call \(i)")
        }
        // A whole answer's line is written before its head: the five are in the log by now.
        #expect(answeredOnTheEventLoop() >= before + 5, "the five calls after the client left: \(gw.accessLog.drivers)")
        #expect(try await gw.send(.GET, "/healthz").status == 200)
    }

    @Test("a client that leaves before its warm call is answered leaves the gateway and the upstream connection usable",
          arguments: ["slow?ms=500", "big?size=300000&ms=500", "sse?ms=500&pause_ms=1000"])
    func clientLeavingBeforeTheAnswer(_ target: String) async throws {
        try await Self.withSetup(gateway: Self.oneUpstreamConnection) { gw, upstream in
            let token = try await Self.warmUp(gw, token: gw.token())
            let before = upstream.requests.count
            try await Self.withRawConnection(gw.server.port) { client in
                try await client.send([Self.request("/rest/svc/\(target)", token: token)])
                let reached = await Self.eventually(within: .seconds(10)) { upstream.requests.count > before }
                try #require(reached, "the request never reached the upstream")
            }
            try await Self.expectUsable(gw, token: token)
        }
    }

    @Test("a client that leaves in the middle of a streamed answer on a warm call leaves the upstream connection usable",
          arguments: ["sse?pause_ms=1500", "big?size=3000000"])
    func clientLeavingMidStream(_ target: String) async throws {
        try await Self.withSetup(gateway: Self.oneUpstreamConnection) { gw, _ in
            let token = try await Self.warmUp(gw, token: gw.token())
            let request = Self.request("/rest/svc/\(target)", token: token)
            let read = try await HangingUpClient.readThenHangUp(port: gw.server.port, request: request.wire, atLeast: 200)
            #expect(read >= 200, "the answer had not begun when the client left")
            try await Self.expectUsable(gw, token: token)
        }
    }

    @Test("a client that sends its request and then closes its sending side (FIN) still gets the answer", arguments: [true, false])
    func clientThatHalfClosesGetsItsAnswer(fastPath: Bool) async throws {
        try await Self.withSetup(environment: fastPath ? [:] : Self.fastPathOff) { gw, _ in
            let token = try await Self.warmUp(gw, token: gw.token(), fastPath: fastPath)
            let answer = try await Self.withRawConnection(gw.server.port) { client in
                try await client.send([Self.request("/rest/svc/half?ms=200", token: token, headers: [("X-Tag", "half")])])
                try await client.finishSending()
                return try await client.next(within: .seconds(10))
            }
            let r = try #require(answer, "the gateway closed the connection without answering (fast path \(fastPath ? "on" : "off"))")
            #expect(r.status == 200, "\(r)")
            #expect(Self.echo(r.body)["tag"] == "half", "\(r)")
            #expect(await gw.accessLog.driver(ofCall: 2) == Self.warmDriver(fastPath: fastPath), "\(r)")
        }
    }

    // MARK: 5. Answers the async path streams

    @Test("an event stream on a warm call reaches the caller event by event, and whole")
    func streamedAnswerOnAWarmCall() async throws {
        try await Self.withSetup { gw, _ in
            let token = try await Self.warmUp(gw, token: gw.token())
            let pause = Duration.seconds(3)
            var request = HTTPClientRequest(url: gw.baseURL + "/rest/svc/sse?pause_ms=\(pause.components.seconds * 1000)")
            request.headers.add(name: "Authorization", value: "Bearer " + token)
            request.headers.add(name: "Accept", value: "text/event-stream")
            let started = ContinuousClock.now
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(20))
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "content-type") == "text/event-stream")
            var received = ""
            var firstEventAt: ContinuousClock.Instant?
            for try await chunk in response.body {
                received += String(buffer: chunk)
                if firstEventAt == nil, received.contains(Self.sseFirst) { firstEventAt = .now }
            }
            let ended = ContinuousClock.now
            #expect(received == Self.sseFirst + Self.sseRest)
            let first = try #require(firstEventAt)
            // The upstream pauses 3 s between its first event and the rest: the first event must
            // come through before the pause ends (half of it as margin for a loaded machine).
            #expect(ended - first >= pause / 2, "the first event came \(first - started) after the call, the end \(ended - first) later: held back")
            #expect(first - started < pause, "time to the first event: \(first - started)")
            #expect(await gw.accessLog.driver(ofCall: 2) == "event-loop", "a warm call's event stream is relayed by the event-loop driver")
        }
    }

    @Test("answers around the 64 KiB whole-answer limit arrive intact on a warm call", arguments: [65_536, 65_537, 300 * 1024])
    func largeAnswerOnAWarmCall(size: Int) async throws {
        try await Self.withSetup { gw, _ in
            let token = try await Self.warmUp(gw, token: gw.token())
            let r = try await Self.call(gw.baseURL, "/rest/svc/big?size=\(size)", token: token)
            #expect(r.status == 200)
            #expect(r.headers.first(name: "content-length") == String(size))
            #expect(r.buffer.readableBytes == size)
            #expect(r.buffer == Self.pattern(size), "the body differs from what the upstream sent")
            #expect(await gw.accessLog.driver(ofCall: 2) == "event-loop")
        }
    }

    // MARK: 6. Streamed answers relayed on the event loop

    /// The access log's line for the call to `target` (a `none` connection's lines).
    static func accessLine(_ log: CapturingLog, connection: String = "svc", status: String = "200", error: String? = nil) -> CapturingLog.Entry? {
        log.entries.last { $0.message == "proxied" && $0.metadata["connection"] == connection && $0.metadata["status"] == status && $0.metadata["error"] == error }
    }

    @Test("streamed answers (an event stream, a body over 64 KiB) on warm calls are relayed by the event-loop path, part by part; with it off, by the async path",
          arguments: [true, false])
    func streamedAnswersAreRelayed(fastPath: Bool) async throws {
        for (target, expected) in [("sse?pause_ms=200", ByteBuffer(string: Self.sseFirst + Self.sseRest)), ("big?size=300000", Self.pattern(300_000))] {
            let log = CapturingLog()
            try await Self.withSetup(environment: fastPath ? [:] : Self.fastPathOff, log: log) { gw, _ in
                let token = try await Self.warmUp(gw, token: gw.token(), fastPath: fastPath)
                let r = try await Self.call(gw.baseURL, "/rest/svc/\(target)", token: token)
                #expect(r.status == 200, "\(target)")
                #expect(r.buffer == expected, "\(target): the body differs from what the upstream sent")
                #expect(r.headers.first(name: "server") == "switchboard", "\(target)")
                if target.hasPrefix("sse") {
                    // The upstream sent it chunked: no length is made up on the way.
                    #expect(r.headers.first(name: "content-length") == nil && r.headers.first(name: "transfer-encoding") == "chunked", "\(r.headers)")
                } else {
                    #expect(r.headers.first(name: "content-length") == "300000", "\(r.headers)")
                }
                let line = try #require(Self.accessLine(log), "no access log line for \(target)")
                #expect(line.metadata["via"] == Self.warmDriver(fastPath: fastPath), "\(target): \(line.metadata)")
                #expect(line.metadata["bytes"] == String(expected.readableBytes), "\(target): \(line.metadata)")
            }
        }
    }

    @Test("relayed streams pipelined with whole answers in one write: every answer in order, each its own, all from the event-loop path")
    func pipelinedRelayedStreams() async throws {
        let log = CapturingLog()
        try await Self.withSetup(log: log) { gw, _ in
            let token = try await Self.warmUp(gw, token: gw.token())
            let targets = ["sse?pause_ms=300", "get?n=1", "big?size=200000", "get?n=3", "sse?pause_ms=0", "get?n=5"]
            let answers = try await Self.withRawConnection(gw.server.port) { client in
                try await client.send(targets.enumerated().map { Self.request("/rest/svc/\($1)", token: token, headers: [("X-Tag", "p\($0)")]) })
                return try await client.next(targets.count)
            }
            #expect(answers.count == targets.count)
            for (i, (answer, target)) in zip(answers, targets).enumerated() {
                #expect(answer.status == 200, "answer \(i): \(answer)")
                if target.hasPrefix("sse") {
                    #expect(answer.body == Self.sseFirst + Self.sseRest, "answer \(i): \(answer)")
                } else if target.hasPrefix("big") {
                    #expect(answer.buffer == Self.pattern(200_000), "answer \(i): the body differs")
                } else {
                    #expect(Self.echo(answer.body)["tag"] == "p\(i)", "answer \(i): \(answer)")
                }
            }
            let relayed = log.entries.filter { $0.message == "proxied" && $0.metadata["via"] == "event-loop" && $0.metadata["error"] == nil }
            #expect(relayed.count >= targets.count + 1, "\(relayed.count) event-loop access lines for the warm-up and \(targets.count) calls")
        }
    }

    @Test("relayed streams through one upstream connection shared by callers on different event loops: every answer whole and its own")
    func relayedStreamsAcrossEventLoops() async throws {
        let log = CapturingLog()
        try await Self.withSetup(gateway: Self.oneUpstreamConnection, log: log) { gw, upstream in
            let token = try await Self.warmUp(gw, token: gw.token())
            // Accepted connections are spread over the event loops in turn, and the one upstream
            // connection lives on one of them: the relay crosses loops for some callers.
            let callers = 4
            let targets = ["sse?pause_ms=50", "big?size=200000", "get?n=2"]
            let results = try await withThrowingTaskGroup(of: [PipeliningClient.Response].self) { group in
                for c in 0..<callers {
                    group.addTask {
                        try await Self.withRawConnection(gw.server.port) { client in
                            var answers: [PipeliningClient.Response] = []
                            for (i, target) in targets.enumerated() {
                                try await client.send([Self.request("/rest/svc/\(target)", token: token, headers: [("X-Tag", "c\(c)-\(i)")])])
                                if let answer = try await client.next(within: .seconds(20)) { answers.append(answer) }
                            }
                            return answers
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.count == callers)
            for answers in results {
                try #require(answers.count == targets.count, "\(answers.count) answers to \(targets.count) requests")
                #expect(answers[0].body == Self.sseFirst + Self.sseRest, "\(answers[0])")
                #expect(answers[1].buffer == Self.pattern(200_000), "the 200 KB body differs")
                #expect(Self.echo(answers[2].body)["uri"] == "/base/get?n=2", "\(answers[2])")
            }
            #expect(upstream.accepted == 1, "one upstream connection, shared: \(upstream.accepted) were opened")
            // Only the access log tells that the streams were relayed, not given to the async path.
            let relayed = log.entries.filter { $0.message == "proxied" && $0.metadata["via"] == "event-loop" && $0.metadata["error"] == nil }
            #expect(relayed.count == callers * targets.count + 1, "\(relayed.count) event-loop access lines for the warm-up and \(callers * targets.count) calls")
        }
    }

    @Test("a caller that stops reading a 32 MiB answer holds the upstream back (nothing piles up in the gateway), then gets every byte",
          arguments: [true, false])
    func slowReaderHoldsTheUpstreamBack(fastPath: Bool) async throws {
        let size = 32 << 20
        let log = CapturingLog()
        try await Self.withSetup(environment: fastPath ? [:] : Self.fastPathOff, log: log) { gw, upstream in
            let token = try await Self.warmUp(gw, token: gw.token(), fastPath: fastPath)
            let completedBefore = upstream.completedAnswers
            var request = HTTPClientRequest(url: gw.baseURL + "/rest/svc/fill?size=\(size)")
            request.headers.add(name: "Authorization", value: "Bearer " + token)
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
            #expect(response.status == .ok)
            // The client reads nothing for a while: its socket fills, then the gateway's, and the
            // upstream's last write must still be waiting. Without back-pressure the gateway would
            // have read all 32 MiB into memory by now (the sockets on the way hold a few MiB).
            try await Task.sleep(for: .milliseconds(1500))
            #expect(upstream.completedAnswers == completedBefore, "the upstream finished writing 32 MiB to a caller that read nothing")
            var received = 0
            var allA = true
            for try await chunk in response.body {
                received += chunk.readableBytes
                if allA, chunk != ByteBuffer(repeating: UInt8(ascii: "a"), count: chunk.readableBytes) { allA = false }
            }
            #expect(received == size)
            #expect(allA, "bytes changed on the way")
            #expect(await Self.eventually(within: .seconds(10)) { upstream.completedAnswers == completedBefore + 1 })
            let line = try #require(Self.accessLine(log))
            #expect(line.metadata["via"] == Self.warmDriver(fastPath: fastPath), "\(line.metadata)")
        }
    }

    @Test("an upstream that breaks off mid-answer: the caller gets the first event, then its connection closes (a cut answer never looks whole); the gateway goes on")
    func upstreamBreakingOffMidStream() async throws {
        let log = CapturingLog()
        try await Self.withSetup(log: log) { gw, _ in
            let token = try await Self.warmUp(gw, token: gw.token())
            var request = HTTPClientRequest(url: gw.baseURL + "/rest/svc/broken")
            request.headers.add(name: "Authorization", value: "Bearer " + token)
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(20))
            #expect(response.status == .ok)
            var received = ""
            var failed = false
            do {
                for try await chunk in response.body { received += String(buffer: chunk) }
            } catch {
                failed = true
            }
            #expect(received == Self.sseFirst, "what came before the break must come through, nothing after it")
            #expect(failed, "the body ended as if whole")
            let line = try #require(Self.accessLine(log, error: "stream_interrupted"), "no access log line for the cut answer")
            #expect(line.metadata["via"] == "event-loop", "\(line.metadata)")
            try await Self.expectUsable(gw, token: token)
        }
    }

    // MARK: 7. Graceful shutdown

    @Test("graceful shutdown while a warm call is pending: the call still gets its whole answer", arguments: ["slow?ms=1000", "sse?pause_ms=1000"])
    func gracefulShutdownWaitsForAPendingAnswer(_ target: String) async throws {
        try await Self.withUpstream { upstream in
            let gateway = try await DirectGateway.start(connections: Self.connections(upstream))
            try await withCleanup({
                let token = try await Self.warmUp(gateway.baseURL, log: gateway.accessLog, token: gateway.token)
                let before = upstream.requests.count
                async let pending = Self.call(gateway.baseURL, "/rest/svc/\(target)", token: token, headers: [("X-Tag", "pending")], deadline: .seconds(20))
                let reached = await Self.eventually(within: .seconds(10)) { upstream.requests.count > before }
                try #require(reached, "the pending call never reached the upstream")
                await gateway.shutDownGracefully()
                let r = try await pending
                #expect(r.status == 200, "\(r.status) \(r.body)")
                #expect(await Self.eventLoopWrote(gateway.accessLog, call: 2))
                if target.hasPrefix("sse") {
                    #expect(r.body == Self.sseFirst + Self.sseRest)
                } else {
                    #expect(Self.echo(r.body)["tag"] == "pending", "\(r.body)")
                }
                #expect(await gateway.stopped(within: .seconds(15)), "the gateway did not finish shutting down")
            }, cleanup: { await gateway.stop() })
        }
    }
}

/// A gateway built straight from ``GatewayOptions`` (for options ``GatewayHarness`` does not
/// set) and run in its own `ServiceGroup`, to shut it down gracefully as SIGTERM does
/// (``GatewayHarness`` cancels its task instead).
final class DirectGateway: Sendable {
    let issuer: TestIssuer
    let group: ServiceGroup
    let run: Task<Void, any Error>
    let finished: NIOLockedValueBox<Bool>
    let port: Int
    let directory: String
    let log: CapturingLog

    var baseURL: String { "http://127.0.0.1:\(port)" }
    var accessLog: AccessLog { AccessLog(log) }
    /// One ID token for the whole test (the verified-token cache is keyed by the string).
    let token: String

    private init(
        issuer: TestIssuer, group: ServiceGroup, run: Task<Void, any Error>, finished: NIOLockedValueBox<Bool>, port: Int, directory: String, log: CapturingLog
    ) {
        self.log = log
        self.issuer = issuer
        self.group = group
        self.run = run
        self.finished = finished
        self.port = port
        self.directory = directory
        self.token = issuer.idToken()
    }

    static func start(connections: String, fastPath: Bool = true) async throws -> DirectGateway {
        let issuer = try await TestIssuer.start()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-test-\(UUID().uuidString)").path
        do {
            return try await start(connections: connections, fastPath: fastPath, issuer: issuer, directory: dir)
        } catch {
            await issuer.stop()
            try? FileManager.default.removeItem(atPath: dir)
            throw error
        }
    }

    private static func start(connections: String, fastPath: Bool, issuer: TestIssuer, directory dir: String) async throws -> DirectGateway {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/connections.yaml"
        try GatewayHarness.yaml(issuer: issuer.issuer, connections: connections, gateway: "").write(toFile: path, atomically: true, encoding: .utf8)
        var (options, ports) = GatewayHarness.testOptions(configPath: path, environment: [:])
        options.fastPath = fastPath
        let log = CapturingLog()
        options.logger = log.logger(label: "gateway-under-test", level: .info)
        let logger = options.logger
        let app = try await buildGatewayApplication(options)
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let finished = NIOLockedValueBox(false)
        let run = Task {
            defer { finished.withLockedValue { $0 = true } }
            try await group.run()
        }
        for await port in ports {
            return DirectGateway(issuer: issuer, group: group, run: run, finished: finished, port: port, directory: dir, log: log)
        }
        run.cancel()
        throw CancellationError()
    }

    /// What SIGTERM does: stop accepting, let pending answers finish, then stop.
    func shutDownGracefully() async {
        await group.triggerGracefulShutdown()
    }

    /// Whether the gateway finished within `deadline`.
    func stopped(within deadline: Duration) async -> Bool {
        await ProxyFastPathTests.eventually(within: deadline) { finished.withLockedValue { $0 } }
    }

    func stop() async {
        run.cancel()
        _ = try? await run.value
        await issuer.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
