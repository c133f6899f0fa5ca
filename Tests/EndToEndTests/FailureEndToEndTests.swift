import Foundation
import PluginAPI
import Testing

/// What the agent sees when the identity provider or the configuration fails.
@Suite("End to end: failures")
struct FailureEndToEndTests {
    @Test("IdP down: a user without a cached credential gets 503 idp_unavailable with Retry-After; a cached one keeps working")
    func identityProviderDown() async throws {
        try await withEndToEnd { env in
            let alice = try await env.signIn("alice")
            let bob = try await env.signIn("bob")
            let warm = try await env.callTool("todo0", "get-todos", token: alice.idToken)
            #expect(warm.status == 200, "\(warm)")

            await env.stopIdP()

            let answer = try await env.callTool("todo0", "get-todos", token: bob.idToken)
            #expect(answer.status == 503, "\(answer)")
            #expect(answer.json["error"] as? String == "idp_unavailable", "\(answer)")
            #expect(answer.json["connection"] as? String == "todo0", "\(answer)")
            let retryAfter = try #require(answer.header("Retry-After"), "no Retry-After: \(answer)")
            #expect(Int(retryAfter).map { $0 > 0 } == true, "Retry-After: \(retryAfter)")
            #expect(answer.header("Content-Type")?.hasPrefix("application/json") == true)

            let cached = try await env.callTool("todo0", "get-todos", id: 2, token: alice.idToken)
            #expect(cached.status == 200, "a cached access token should not need the IdP: \(cached)")
        }
    }

    @Test("IdP down: a fresh gateway (nothing cached, not even the IdP's keys) answers 503 idp_unavailable with Retry-After")
    func identityProviderDownFreshGateway() async throws {
        try await withEndToEnd { env in
            let alice = try await env.signIn("alice")
            await env.stopIdP()
            let fresh = try await EndToEnd.startGateway(configPath: env.configPath)
            let answer: Answer
            do {
                answer = try await EndToEnd.callTool(at: fresh.baseURL, "todo0", "get-todos", token: alice.idToken)
            } catch {
                await fresh.stop()
                throw error
            }
            await fresh.stop()
            // The user's token cannot be checked while the IdP's keys are unreachable: that is the
            // IdP being down (503, retry), not a bad token (401).
            #expect(answer.status == 503, "\(answer)")
            #expect(answer.json["error"] as? String == "idp_unavailable", "\(answer)")
            #expect(answer.header("Retry-After") != nil, "no Retry-After: \(answer)")
        }
    }

    @Test("a token endpoint answering 200 with non-JSON gives 502 token_exchange_failed, and nothing reaches the upstream")
    func garbageFromTheTokenEndpoint() async throws {
        try await withEndToEnd { env in
            let alice = try await env.signIn("alice")
            let answer = try await env.callTool("garbage", "get-todos", token: alice.idToken)
            #expect(answer.status == 502, "\(answer)")
            #expect(answer.json["error"] as? String == "token_exchange_failed", "\(answer)")
            #expect(answer.json["connection"] as? String == "garbage", "\(answer)")
            #expect(env.recorder.requests.isEmpty, "the upstream was called without a credential")
            let card = try await env.card("garbage")
            #expect(card["status"] as? String == "ERROR" && card["reason"] as? String == "token_exchange_failed", "\(card)")
        }
    }

    @Test("a missing agent key file: the gateway refuses to start, naming the file")
    func missingKeyAtStart() async throws {
        try await withEndToEnd { env in
            let dir = env.directory + "/broken"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let missing = dir + "/no-such-agent-key.pem"
            let path = dir + "/connections.yaml"
            try env.connectionsYAML(keyPath: missing).write(toFile: path, atomically: true, encoding: .utf8)
            do {
                let server = try await EndToEnd.startGateway(configPath: path)
                await server.stop()
                Issue.record("the gateway started without its agent key")
            } catch let error as ConfigErrors {
                #expect(error.description.contains(missing), "the error does not name the key file: \(error)")
            }
        }
    }

    @Test("a reload pointing at a missing agent key is rejected: the old registry keeps serving and status shows config.last_error")
    func missingKeyOnReload() async throws {
        try await withEndToEnd { env in
            let alice = try await env.signIn("alice")
            #expect(try await env.callTool("todo0", "get-todos", token: alice.idToken).status == 200)
            let before = try await env.status()["config"] as? [String: Any] ?? [:]
            let generation = (before["generation"] as? NSNumber)?.intValue
            #expect(before["last_error"] is NSNull, "\(before)")

            let missing = env.directory + "/moved-away-agent-key.pem"
            try env.connectionsYAML(keyPath: missing).write(toFile: env.configPath, atomically: true, encoding: .utf8)
            var config: [String: Any] = [:]
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                config = try await env.status()["config"] as? [String: Any] ?? [:]
                if config["last_error"] is [String: Any] { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            let lastError = try #require(config["last_error"] as? [String: Any], "no config.last_error after the edit: \(config)")
            #expect((lastError["message"] as? String)?.contains(missing) == true, "the error does not name the key file: \(lastError)")
            #expect((config["generation"] as? NSNumber)?.intValue == generation, "a broken file replaced the registry")

            // The previous registry (and its agent key) keeps serving, new users included.
            let bob = try await env.signIn("bob")
            let answer = try await env.callTool("todo0", "get-todos", id: 2, token: bob.idToken)
            #expect(answer.status == 200, "\(answer)")
            #expect(try await env.card("todo0")["status"] as? String == "LIVE")
        }
    }
}
