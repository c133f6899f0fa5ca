import AsyncHTTPClient
import Foundation
@testable import Gateway
import Hummingbird
import HTTPTypes
import Logging
import NIOHTTP1
import PluginAPI
import StandardPlugins
import SwitchboardTesting
import Testing
import Upstream

/// A call keeps the registry generation it was admitted under, across the hand-over from the
/// event-loop driver to the async driver: a reload in between changes nothing for it.
@Suite struct ProxyExchangeReloadTests {
    static func yaml(issuer: String, upstream: String) -> String {
        GatewayHarness.yaml(issuer: issuer, connections: """
              - name: svc
                kind: application
                upstream: \(upstream)/base
                auth: { strategy: none }
            """, gateway: "")
    }

    @Test("a reload between admission and the hand-over: the call is served by the connection it was admitted to")
    func reloadBetweenAdmissionAndHandOver() async throws {
        let issuer = try await TestIssuer.start()
        let first = try await ScriptedUpstream.start { _ in .text("from the first upstream") }
        let second = try await ScriptedUpstream.start { _ in .text("from the second upstream") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-reload-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/connections.yaml"
        try Self.yaml(issuer: issuer.issuer, upstream: first.baseURL).write(toFile: path, atomically: true, encoding: .utf8)
        let logger = Logger.quiet("reload-test")
        let loader = RegistryLoader(plugins: StandardPlugins.registry(), environment: [:])
        let holder = try await RegistryHolder.start(
            configPath: path, plan: try loader.load(path: path), fingerprint: FileFingerprint.of(path), loader: loader, httpClient: HTTPClient.shared,
            logger: logger, clock: SystemClock())
        let upstreamClient = UpstreamClient(
            pool: HTTP1ConnectionPool(maxPerOrigin: 4, connectTimeout: .seconds(2), idleTimeout: .seconds(10)), fallback: HTTPClient.shared)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let proxy = ProxyHandler(holder: holder, upstreamClient: upstreamClient, logger: logger, clock: SystemClock())
        let fastPath = ProxyFastPath(proxy: proxy, aggregate: AggregateEndpoint(holder: holder, proxy: proxy, logger: logger))

        let head = HTTPRequestHead(
            version: .http1_1, method: .GET, uri: "/rest/svc/thing",
            headers: ["host": "gateway.test", "authorization": "Bearer \(issuer.idToken())"])
        // Admitted by the event-loop driver under generation 1 (a first call: token not verified yet).
        let taken = try #require(fastPath.take(head))
        #expect(taken.registry.generation == 1)

        try Self.yaml(issuer: issuer.issuer, upstream: second.baseURL).write(toFile: path, atomically: true, encoding: .utf8)
        #expect(await holder.reload(force: true))
        #expect(holder.registry.generation == 2)

        let response = await proxy.takeOver(taken, headers: head.headers, body: nil, prefetched: nil)
        let collected = Collected()
        try await response.body.write(collected)
        #expect(response.status == .ok)
        #expect(String(buffer: collected.bytes) == "from the first upstream")
        #expect(first.requests.map(\.uri) == ["/base/thing"])
        #expect(second.requests.isEmpty)

        // A call admitted now goes to the new upstream.
        let next = try #require(fastPath.take(head))
        #expect(next.registry.generation == 2)

        await upstreamClient.shutdown()
        await holder.shutdown()
        await first.stop()
        await second.stop()
        await issuer.stop()
    }
}

/// Collects a Hummingbird response body written in-process.
private final class Collected: ResponseBodyWriter {
    var bytes = ByteBuffer()
    func write(_ buffer: ByteBuffer) async throws {
        var buffer = buffer
        bytes.writeBuffer(&buffer)
    }
    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
