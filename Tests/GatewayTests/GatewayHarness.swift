import AsyncHTTPClient
import Foundation
import Gateway
import Hummingbird
import NIOCore
import NIOHTTP1
import StandardPlugins
import Synchronization
import SwitchboardTesting
import PluginTestKit

/// A running gateway on a free port, loaded from a connections.yaml in a temp directory, with
/// a live test issuer for the users' ID tokens.
final class GatewayHarness: Sendable {
    let issuer: TestIssuer
    let server: RunningServer
    let configPath: String
    let directory: String
    /// The gateway's log lines at info level.
    let log: CapturingLog

    var baseURL: String { server.baseURL }
    /// Its access log: which driver ran each call.
    var accessLog: AccessLog { AccessLog(log) }

    private init(issuer: TestIssuer, server: RunningServer, configPath: String, directory: String, log: CapturingLog) {
        self.log = log
        self.issuer = issuer
        self.server = server
        self.configPath = configPath
        self.directory = directory
    }

    /// `connections` is YAML for the `connections:` list (indented by two spaces); `gateway` an optional `gateway:` block.
    /// Options for a gateway under test: port 0 (the bound port arrives on `ports`), no
    /// SIGHUP handler, only critical log lines.
    static func testOptions(configPath path: String, environment: [String: String]) -> (GatewayOptions, AsyncStream<Int>) {
        var options = GatewayOptions(configPath: path, plugins: StandardPlugins.registry())
        options.port = 0
        options.environment = environment
        options.handleSIGHUP = false
        options.logger = .quiet("gateway-under-test")
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        options.onServerRunning = { port in continuation.yield(port) }
        return (options, ports)
    }

    /// `log`: receives the gateway's lines at info level (a new one when not given).
    static func start(connections: String, gateway: String = "", environment: [String: String] = [:], log: CapturingLog? = nil) async throws -> GatewayHarness {
        let issuer = try await TestIssuer.start()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/connections.yaml"
        try yaml(issuer: issuer.issuer, connections: connections, gateway: gateway).write(toFile: path, atomically: true, encoding: .utf8)
        var (options, ports) = testOptions(configPath: path, environment: environment)
        let log = log ?? CapturingLog()
        options.logger = log.logger(label: "gateway-under-test", level: .info)
        let app = try await buildGatewayApplication(options)
        let server = try await TestHTTPServer.run(app, ports: ports)
        return GatewayHarness(issuer: issuer, server: server, configPath: path, directory: dir, log: log)
    }

    static func yaml(issuer: String, connections: String, gateway: String) -> String {
        """
        version: 1
        \(gateway)
        users:
          issuer: \(issuer)
          audience: agent0
        connections:
        \(connections)
        """
    }

    /// Rewrites connections.yaml (atomically, as editors do).
    func rewrite(connections: String, gateway: String = "") throws {
        try Self.yaml(issuer: issuer.issuer, connections: connections, gateway: gateway).write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    func rewriteRaw(_ text: String) throws {
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    func stop() async {
        await server.stop()
        await issuer.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func token(subject: String = "user-1") -> String { issuer.idToken(subject: subject) }

    /// Sends a request to the gateway and collects the whole answer.
    func send(
        _ method: HTTPMethod, _ path: String, headers: [(String, String)] = [], body: String? = nil, token: String? = nil,
        chunked: Bool = false, timeout: Duration = .seconds(20)
    ) async throws -> HTTPAnswer {
        var content: HTTPClientRequest.Body?
        if let body {
            if chunked {
                let chunks = body.utf8.chunked(1024).map { ByteBuffer(bytes: $0) }
                content = .stream(chunks.async, length: .unknown)
            } else {
                content = .bytes(ByteBuffer(string: body))
            }
        }
        let auth = token.map { [("Authorization", "Bearer " + $0)] } ?? []
        return try await TestHTTP.send(method, baseURL + path, headers: auth + headers, content: content, client: HTTPClient.shared, timeout: timeout)
    }

    /// Polls `condition` every 50 ms until it holds or `timeout` passes; returns the time it took.
    func waitUntil(timeout: Duration = .seconds(5), _ condition: () async throws -> Bool) async throws -> Duration? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < timeout {
            if try await condition() { return ContinuousClock.now - start }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    func status() async throws -> [String: Any] {
        let r = try await send(.GET, "/api/connections/status")
        return try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any] ?? [:]
    }

    func connectionStatus(_ name: String) async throws -> [String: Any]? {
        let doc = try await status()
        let list = doc["connections"] as? [[String: Any]] ?? []
        return list.first { $0["name"] as? String == name }
    }
}

extension Collection {
    func chunked(_ size: Int) -> [[Element]] {
        var out: [[Element]] = []
        var current: [Element] = []
        for e in self {
            current.append(e)
            if current.count == size { out.append(current); current = [] }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }
}

extension Array where Element: Sendable {
    var async: AsyncStream<Element> {
        AsyncStream { c in
            for e in self { c.yield(e) }
            c.finish()
        }
    }
}

func jsonObject(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
}
