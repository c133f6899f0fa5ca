import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SwitchboardTesting
import Testing

/// Warm `idjag` calls through the gateway's event-loop path (Proxy/FastPath/), with the real
/// identity provider minting the access tokens. The upstream is a ``ScriptedUpstream``; the
/// gateway's access log (``AccessLog``) names the driver of each call.
@Suite("End to end: warm ID-JAG calls on the gateway's event-loop path")
struct FastPathEndToEndTests {
    /// An MCP upstream's script: a 401 (`invalid_token`) when `refuseNext` is set (which it
    /// clears), else a tool result naming the JSON-RPC id it answers. `streamed`: the 401's
    /// body comes chunked (a streamed answer, which the event-loop path would otherwise relay).
    static func script(refuseNext: NIOLockedValueBox<Bool>, streamed: Bool) -> ScriptedUpstream.Script {
        { request in
            if refuseNext.withLockedValue({ refuse in defer { refuse = false }; return refuse }) {
                let challenge = [("WWW-Authenticate", #"Bearer error="invalid_token""#)]
                if streamed {
                    return .init(
                        status: 401, headers: [("Content-Type", "application/json")] + challenge,
                        content: .chunked([.data(ByteBuffer(string: #"{"error":"#)), .data(ByteBuffer(string: #""invalid_token"}"#))]))
                }
                return .text(#"{"error":"invalid_token"}"#, status: 401, headers: challenge)
            }
            let id = ((try? JSONSerialization.jsonObject(with: Data(request.body.readableBytesView))) as? [String: Any])?["id"] as? Int ?? 0
            let text = #"{"jsonrpc":"2.0","id":\#(id),"result":{"content":[{"type":"text","text":"served \#(id)"}],"isError":false}}"#
            return ScriptedUpstream.Reply(headers: [("Content-Type", "application/json")], content: .whole(ByteBuffer(string: text)))
        }
    }

    @Test("a warm call whose access token the upstream refuses once (401 whole, or streamed): one refresh, one replay, and the agent sees one 200",
          arguments: [false, true])
    func refreshOnAWarmCall(streamed: Bool) async throws {
        let refuseNext = NIOLockedValueBox(false)
        let upstream = try await ScriptedUpstream.start(Self.script(refuseNext: refuseNext, streamed: streamed))
        try await withCleanup({ try await refreshScenario(upstream, refuseNext: refuseNext) }, cleanup: { await upstream.stop() })
    }

    private func refreshScenario(_ upstream: ScriptedUpstream, refuseNext: NIOLockedValueBox<Bool>) async throws {
        try await withEndToEnd { env in
            let path = env.directory + "/fast-path-connections.yaml"
            try (env.connectionsYAML(keyPath: env.agentKeyPath) + EndToEnd.idjagConnection("refusing", upstream: upstream.baseURL + "/mcp"))
                .write(toFile: path, atomically: true, encoding: .utf8)
            let log = AccessLog()
            let gateway = try await EndToEnd.startGateway(configPath: path, log: log)
            do {
                let alice = try await env.signIn("alice")
                func call(_ id: Int) async throws -> Answer {
                    try await EndToEnd.callTool(at: gateway.baseURL, "refusing", "anything", id: id, token: alice.idToken)
                }

                let first = try await call(1)
                #expect(first.status == 200, "\(first)")
                // The first call verifies the token on the way, finds no access token cached and
                // hands the request to the async path (which runs the exchange).
                #expect(await log.driver(ofCall: 1) == "hand-over", "the first call is handed over by the event-loop handler")
                #expect(env.front.idJAGExchanges >= 1)
                let warm = try await call(2)
                #expect(warm.status == 200 && warm.body.contains("served 2"), "\(warm)")
                #expect(await log.driver(ofCall: 2) == "event-loop", "a warm idjag call (verified token, cached access token) takes the event-loop path")
                let held = try #require(upstream.requests.last?.header("authorization"))

                refuseNext.withLockedValue { $0 = true }
                let before = upstream.requests.count
                let (exchanges, grants) = (env.front.idJAGExchanges, env.front.jwtBearerGrants)
                let refused = try await call(3)
                #expect(refused.status == 200, "the agent must see the replayed answer: \(refused)")
                #expect(refused.json["id"] as? Int == 3 && refused.body.contains("served 3"), "\(refused)")
                #expect(await log.driver(ofCall: 3) == "hand-over", "the 401 was handed over to the async path and its answer written back by the event-loop path")
                let seen = Array(upstream.requests.dropFirst(before))
                #expect(seen.count == 2, "the upstream must see the refused request and one replay, saw \(seen.count)")
                #expect(env.front.idJAGExchanges == exchanges + 1 && env.front.jwtBearerGrants == grants + 1,
                        "one refresh: \(env.front.idJAGExchanges - exchanges) ID-JAG exchanges, \(env.front.jwtBearerGrants - grants) JWT-bearer grants")
                let tokens = seen.compactMap { $0.header("authorization") }
                #expect(tokens.count == 2 && tokens[0] == held && tokens[1] != held, "the replay must carry the refreshed access token")
                #expect(!tokens.contains { $0.contains(alice.idToken) }, "the ID token reached the upstream")

                let after = try await call(4)
                #expect(after.status == 200, "\(after)")
                #expect(await log.driver(ofCall: 4) == "event-loop", "\(log.drivers)")
                #expect(upstream.requests.count == before + 3)
                #expect(upstream.requests.last?.header("authorization") == tokens.last, "later calls use the refreshed token")
            } catch {
                await gateway.stop()
                throw error
            }
            await gateway.stop()
        }
    }
}
