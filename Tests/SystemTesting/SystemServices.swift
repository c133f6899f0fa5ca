import Foundation
public import IdentityProvider
import Logging
import ServiceLifecycle
public import SwitchboardTesting
public import Todo0

/// The real development identity provider (`Sources/IdentityProvider`) in-process.
public enum IdentityProviderService {
    /// Builds the IdP of `options` and runs it until the returned server is stopped; with
    /// `options.port` 0 it listens on a free loopback port (``RunningServer/port``).
    /// `options.onServerRunning` is taken for that.
    public static func start(_ options: IdentityProviderOptions) async throws -> RunningServer {
        var options = options
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        options.onServerRunning = { continuation.yield($0) }
        return try await TestHTTPServer.run(try await buildIdentityProviderApplication(options), ports: ports)
    }
}

/// One initialised IdP data directory per agent (keys generated, the agent registered as
/// `switchboard idp --init-agent` does, its private key at `<dir>/agent.pem`), made once per run
/// and copied for every IdP that wants one: RSA key generation dominates an IdP's first start.
public actor IdPDataTemplate {
    public static let shared = IdPDataTemplate()
    private var made: [String: Task<String, any Error>] = [:]

    /// The template for agent `agentID` with key id `keyID`; copy it, never write into it.
    public func path(agentID: String, keyID: String) async throws -> String {
        let key = agentID + "\u{0}" + keyID
        if let task = made[key] { return try await task.value }
        let task = Task {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("idp-template-\(UUID().uuidString)").path
            var options = IdentityProviderOptions()
            options.dataDirectory = directory
            options.logger = .quiet("idp-template")
            _ = try await initializeAgent(options: options, agentID: agentID, keyID: keyID, privateKeyPath: directory + "/agent.pem")
            return directory
        }
        made[key] = task
        return try await task.value
    }
}

/// todo0 (`Sources/Todo0`) running in-process on the ports of its options (0: free ones).
public final class Todo0Service: Sendable {
    public let mcpPort: Int
    public let restPort: Int
    private let task: Task<Void, any Error>

    /// Its MCP endpoint.
    public var mcpURL: String { "http://127.0.0.1:\(mcpPort)/mcp" }

    private init(mcpPort: Int, restPort: Int, task: Task<Void, any Error>) {
        self.mcpPort = mcpPort
        self.restPort = restPort
        self.task = task
    }

    /// Builds and starts todo0; returns once both ports listen. `options.onServerRunning` is
    /// taken for that.
    public static func start(_ options: Todo0Options) async throws -> Todo0Service {
        var options = options
        let (ports, continuation) = AsyncStream.makeStream(of: (Int, Int).self)
        options.onServerRunning = { mcp, rest in
            continuation.yield((mcp, rest))
            continuation.finish()
        }
        let service = try await buildTodo0(options)
        let task = Task { try await service.run() }
        // Should the service stop before it listens, stop waiting too.
        Task {
            _ = try? await task.value
            continuation.finish()
        }
        for await (mcp, rest) in ports {
            return Todo0Service(mcpPort: mcp, restPort: rest, task: task)
        }
        task.cancel()
        throw StoppedBeforeListening(description: "todo0 stopped before it listened")
    }

    /// Stops todo0 and waits for it.
    public func stop() async {
        task.cancel()
        _ = try? await task.value
    }

    public struct StoppedBeforeListening: Error, CustomStringConvertible {
        public var description: String
    }
}
