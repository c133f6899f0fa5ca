import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import SwitchboardTesting
import Testing

/// The answers the event-loop path hands over to the async path — a refresh after 401, a
/// scope step-up (a 403 challenge, an `insufficient_scope` tool result in JSON or in an SSE
/// event) and the plugin's `interaction_required` — must reach the caller as they would with
/// the async path alone. Each case runs two gateways from one connections.yaml (the
/// environment's, plus `parity` (idjag) and `consent` (oauth-sts) in front of one
/// ``ScriptedUpstream``), one with ``GatewayOptions/fastPath`` on and one with it off, sends
/// them the same calls as the same user, and expects the same status, body and header list
/// (``DriverParity/driverHeaders`` aside).
///
/// The real identity provider mints the credentials (the GatewayTests target has no caching
/// plugin that could refresh or step up). Which driver ran each call shows in the gateway's
/// access log (``AccessLog``): `hand-over` for what the event-loop driver passed to the async
/// one, `event-loop` for a warm call it answered, `async` for the gateway without it.
@Suite("End to end: refresh, step-up and consent answer alike through both proxy drivers")
struct ProxyDriverParityTests {
    /// The scopes the `parity` connection asks for, and the one its step-up cases demand.
    static let configured = "mcp:connect mcp:tools:read"
    static let extra = "mcp:tools:manage"
    static let challengeHeader = #"Bearer error="insufficient_scope", scope="mcp:connect mcp:tools:read mcp:tools:manage""#

    // MARK: The upstream

    /// The MCP upstream, by the tool the call names (`Mcp-Name`):
    /// - any credential in `refused`: 401 `invalid_token` (whatever the tool);
    /// - `manage-403`, without `mcp:tools:manage` in the access token: 403 with ``challengeHeader``;
    /// - `manage-json`, without it: 200, a JSON tool result carrying the insufficient_scope JSON;
    /// - `manage-sse`: `text/event-stream`, one event whose data is the JSON-RPC answer (that
    ///   tool result without the scope, the success with it);
    /// - anything else: 200, JSON tool result `served <tool> <id>`.
    static func script(refused: NIOLockedValueBox<Set<String>>) -> ScriptedUpstream.Script {
        { request in
            let extraHeaders = [("Cache-Control", "no-store"), ("X-Multi", "one"), ("X-Multi", "two"), ("x-MiXeD-Case", "Kept As Is")]
            let authorization = request.header("authorization") ?? ""
            if refused.withLockedValue({ $0.contains(authorization) }) {
                return .init(
                    status: 401, headers: [("Content-Type", "application/json"), ("WWW-Authenticate", #"Bearer error="invalid_token""#)],
                    content: .whole(ByteBuffer(string: #"{"error":"invalid_token"}"#)))
            }
            let tool = request.header("mcp-name") ?? ""
            let id = ((try? JSONSerialization.jsonObject(with: Data(request.body.readableBytesView))) as? [String: Any])?["id"] as? Int ?? 0
            let token = String(authorization.dropFirst("Bearer ".count))
            let allowed = ((try? DecodedJWT(token))?.scopes ?? []).contains(extra)
            let success = #"{"jsonrpc":"2.0","id":\#(id),"result":{"content":[{"type":"text","text":"served \#(tool) \#(id)"}],"isError":false}}"#
            let inner = #"{\"error\":\"insufficient_scope\",\"required_scopes\":[\"mcp:connect\",\"mcp:tools:read\",\"mcp:tools:manage\"]}"#
            let challenge = #"{"jsonrpc":"2.0","id":\#(id),"result":{"content":[{"type":"text","text":"\#(inner)"}],"isError":true}}"#
            switch tool {
            case "manage-403" where !allowed:
                return .init(
                    status: 403, headers: [("Content-Type", "application/json"), ("WWW-Authenticate", challengeHeader)] + extraHeaders,
                    content: .whole(ByteBuffer(string: #"{"error":"insufficient_scope"}"#)))
            case "manage-json" where !allowed:
                return .init(headers: [("Content-Type", "application/json")] + extraHeaders, content: .whole(ByteBuffer(string: challenge)))
            case "manage-sse":
                let event = "event: message\ndata: " + (allowed ? success : challenge) + "\n\n"
                return .init(headers: [("Content-Type", "text/event-stream")] + extraHeaders, content: .chunked([.data(ByteBuffer(string: event))]))
            default:
                return .init(headers: [("Content-Type", "application/json")] + extraHeaders, content: .whole(ByteBuffer(string: success)))
            }
        }
    }

    // MARK: The gateways

    /// One gateway under test.
    struct Driver {
        var url: String
        var eventLoop: Bool
        var log: AccessLog
        var name: String { eventLoop ? "event loop" : "async" }

        /// What the access log must name for a call the event-loop driver hands over.
        var handedOver: String { eventLoop ? "hand-over" : "async" }
        /// For a warm call it answers itself.
        var warm: String { eventLoop ? "event-loop" : "async" }

        /// A `tools/call` of `tool` on `connection` as `user`.
        func call(_ connection: String, _ tool: String, id: Int, as user: SignedInUser) async throws -> Answer {
            try await EndToEnd.callTool(at: url, connection, tool, id: id, token: user.idToken)
        }
    }

    /// A fresh system, a scripted upstream, and the two gateways (event-loop path on, then off).
    static func withDrivers(_ body: (EndToEnd, ScriptedUpstream, NIOLockedValueBox<Set<String>>, [Driver]) async throws -> Void) async throws {
        let refused = NIOLockedValueBox<Set<String>>([])
        let upstream = try await ScriptedUpstream.start(script(refused: refused))
        try await withCleanup({
            try await withEndToEnd { env in
                let path = env.directory + "/parity-connections.yaml"
                try (env.connectionsYAML(keyPath: env.agentKeyPath) + EndToEnd.idjagConnection("parity", upstream: upstream.baseURL + "/mcp") + """

                      - name: consent
                        kind: mcp_server
                        upstream: \(upstream.baseURL)/mcp
                        auth:
                          strategy: oauth-sts
                          resource: orn:dev:idp:github-mcp

                    """).write(toFile: path, atomically: true, encoding: .utf8)
                let (fastLog, slowLog) = (AccessLog(), AccessLog())
                let fast = try await EndToEnd.startGateway(configPath: path, fastPath: true, log: fastLog)
                try await withCleanup({
                    let slow = try await EndToEnd.startGateway(configPath: path, fastPath: false, log: slowLog)
                    try await withCleanup({
                        try await body(env, upstream, refused, [
                            Driver(url: fast.baseURL, eventLoop: true, log: fastLog), Driver(url: slow.baseURL, eventLoop: false, log: slowLog),
                        ])
                    }, cleanup: { await slow.stop() })
                }, cleanup: { await fast.stop() })
            }
        }, cleanup: { await upstream.stop() })
    }


    /// The JSON-RPC `result` of a tool call's answer: the JSON body, or the data of an SSE
    /// answer's first event.
    static func toolResult(_ answer: Answer) -> [String: Any]? {
        guard answer.header("Content-Type")?.hasPrefix("text/event-stream") == true else { return answer.result }
        let data = answer.body.split(separator: "\n").first { $0.hasPrefix("data: ") }?.dropFirst("data: ".count) ?? ""
        return ((try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any])?["result"] as? [String: Any]
    }

    /// The two drivers' answers are the same bytes: status, body (with `masking` replaced by
    /// `<masked>` in each, e.g. a per-call URI), header list.
    static func expectSame(_ a: Answer, _ b: Answer, _ label: String, masking: (String?, String?) = (nil, nil)) {
        func masked(_ text: String, _ part: String?) -> String { part.map { text.replacingOccurrences(of: $0, with: "<masked>") } ?? text }
        #expect(a.status == b.status, "\(label): \(a.status) with the event-loop path, \(b.status) without")
        #expect(masked(a.body, masking.0) == masked(b.body, masking.1), "\(label): the bodies differ:\n  event loop: \(a.body)\n  async:      \(b.body)")
        #expect(DriverParity.headerList(a.headers) == DriverParity.headerList(b.headers),
                "\(label): the header lists differ:\n  event loop: \(DriverParity.headerList(a.headers))\n  async:      \(DriverParity.headerList(b.headers))")
    }

    // MARK: Refresh and step-up (idjag)

    enum Replay: String, CaseIterable, Sendable, CustomTestStringConvertible {
        /// The upstream refuses the held access token once (401).
        case refresh
        /// 403 with an `insufficient_scope` challenge.
        case stepUp403 = "manage-403"
        /// A JSON tool result carrying `insufficient_scope`.
        case stepUpJSON = "manage-json"
        /// The same tool result as one SSE event.
        case stepUpSSE = "manage-sse"

        var testDescription: String { rawValue }
        var tool: String { rawValue }
    }

    @Test("refresh after a 401 and step-up after a 403 or a JSON tool result: one replay, the same answer through both drivers",
          arguments: [Replay.refresh, .stepUp403, .stepUpJSON])
    func replayedAnswer(_ replay: Replay) async throws {
        try await Self.expectReplay(replay)
    }

    @Test("step-up after an SSE answer whose one event is the insufficient_scope tool result: one replay, the same answer through both drivers")
    func replayedAnswerAfterSSEChallenge() async throws {
        try await Self.expectReplay(.stepUpSSE)
    }

    /// Per driver: a warm-up call (verifies the ID token, caches the access token), then the
    /// call `replay` is about; its answer must be the replay's, and alike through both drivers.
    static func expectReplay(_ replay: Replay) async throws {
        try await withDrivers { env, upstream, refused, drivers in
            let alice = try await env.signIn("alice")
            var answers: [Answer] = []
            var warmUps: [Answer] = []
            for driver in drivers {
                let label = "\(replay), \(driver.name)"
                let warm = try await driver.call("parity", "warm-up", id: 1, as: alice)
                try #require(warm.status == 200 && warm.body.contains("served warm-up 1"), "\(label): warm-up \(warm)")
                warmUps.append(warm)
                let held = try #require(upstream.requests.last?.header("authorization"), "\(label): no credential reached the upstream")
                if replay == .refresh { refused.withLockedValue { _ = $0.insert(held) } }
                let (exchanges, before) = (env.front.idJAGExchanges, upstream.requests.count)

                let answer = try await driver.call("parity", replay.tool, id: 2, as: alice)
                answers.append(answer)
                #expect(await driver.log.drivers(ofCalls: 2) == [driver.handedOver, driver.handedOver], "\(label): the warm-up and the replayed call")
                #expect(answer.status == 200, "\(label): the caller must see the replayed answer: \(answer)")
                #expect(Self.toolResult(answer)?["isError"] as? Bool == false && answer.body.contains("served \(replay.tool) 2"), "\(label): \(answer)")
                #expect(!answer.body.contains("insufficient_scope") && !answer.body.contains("invalid_token"), "\(label): \(answer)")
                #expect(answer.header("Switchboard-Step-Up") == (replay == .refresh ? nil : extra), "\(label): \(answer.headers)")

                let seen = Array(upstream.requests.dropFirst(before))
                #expect(seen.count == 2, "\(label): the upstream must see the call and one replay, saw \(seen.count)")
                let tokens = seen.compactMap { $0.header("authorization") }
                #expect(tokens.count == 2 && tokens.first == held && tokens.last != held, "\(label): the replay must carry a new credential")
                #expect(Set(seen.map { String(buffer: $0.body) }).count == 1, "\(label): the replay's body is not the call's")
                #expect(env.front.idJAGExchanges == exchanges + 1, "\(label): \(env.front.idJAGExchanges - exchanges) ID-JAG exchanges for one replay")
                if replay != .refresh, let last = tokens.last {
                    #expect(try DecodedJWT(String(last.dropFirst("Bearer ".count))).scopes.contains(extra), "\(label): the replay's token lacks \(extra)")
                }
            }
            // The cold warm-up call is handed over whole (no credential cached yet): alike too.
            expectSame(warmUps[0], warmUps[1], "\(replay): the warm-up call")
            expectSame(answers[0], answers[1], "\(replay)")
        }
    }

    // MARK: Consent (oauth-sts)

    @Test("interaction_required from the plugin, on a first call and on a warm call's refresh after the user's consent was revoked: the same answer through both drivers")
    func interactionRequired() async throws {
        try await Self.withDrivers { env, upstream, refused, drivers in
            let alice = try await env.signIn("alice")
            let resource = "orn:dev:idp:github-mcp"

            // 1. A first call (the event-loop handler takes it, verifies the token, finds no
            // credential and hands it over): consent needed.
            var first: [(Answer, String)] = []
            for driver in drivers {
                let answer = try await driver.call("consent", "anything", id: 1, as: alice)
                let uri = try Self.expectInteractionRequired(answer, id: 1, env: env, "first call, \(driver.name)")
                first.append((answer, uri))
            }
            Self.expectSame(first[0].0, first[1].0, "interaction_required on a first call", masking: (first[0].1, first[1].1))

            // 2. Consent given: a warm-up call each, then a warm call the event-loop path answers.
            try await env.approve(first[0].1, as: alice)
            for driver in drivers {
                let warmUp = try await driver.call("consent", "anything", id: 2, as: alice)
                try #require(warmUp.status == 200 && warmUp.body.contains("served anything 2"), "warm-up, \(driver.name): \(warmUp)")
                let warm = try await driver.call("consent", "anything", id: 3, as: alice)
                #expect(warm.status == 200 && warm.body.contains("served anything 3"), "warm call, \(driver.name): \(warm)")
                #expect(await driver.log.driver(ofCall: 3) == driver.warm, "warm call, \(driver.name): \(driver.log.drivers)")
            }

            // 3. Consent revoked, and the upstream refuses the tokens it got: the same warm call
            // meets a 401, the refresh asks the IdP, and the IdP wants consent again.
            try await env.revokeConsent(of: alice, resource: resource)
            refused.withLockedValue { $0.formUnion(upstream.requests.compactMap { $0.header("authorization") }) }
            var refreshed: [(Answer, String)] = []
            for driver in drivers {
                let before = upstream.requests.count
                let answer = try await driver.call("consent", "anything", id: 4, as: alice)
                let uri = try Self.expectInteractionRequired(answer, id: 4, env: env, "refresh, \(driver.name)")
                #expect(upstream.requests.count == before + 1, "refresh, \(driver.name): the call reached the upstream once, then the refresh needed consent")
                refreshed.append((answer, uri))
            }
            Self.expectSame(refreshed[0].0, refreshed[1].0, "interaction_required on a refresh", masking: (refreshed[0].1, refreshed[1].1))
        }
    }

    /// A JSON-RPC error answer carrying `interaction_required` and an interaction URI on the
    /// IdP, with the call's id; returns the URI.
    static func expectInteractionRequired(_ answer: Answer, id: Int, env: EndToEnd, _ label: String) throws -> String {
        #expect(answer.status == 401, "\(label): \(answer)")
        #expect((answer.json["id"] as? NSNumber)?.intValue == id, "\(label): \(answer)")
        #expect(answer.json["connection"] as? String == "consent", "\(label): \(answer)")
        let data = (answer.json["error"] as? [String: Any])?["data"] as? [String: Any]
        #expect(data?["error"] as? String == "interaction_required", "\(label): \(answer)")
        #expect(answer.header("WWW-Authenticate")?.contains(#"error="interaction_required""#) == true, "\(label): \(answer.headers)")
        let uri = try #require(answer.json["interaction_uri"] as? String, "\(label): no interaction_uri in \(answer)")
        #expect(uri.hasPrefix(env.issuer + "/oauth2/v1/interaction/") && data?["interaction_uri"] as? String == uri, "\(label): \(answer)")
        return uri
    }
}
