import Foundation
import IdentityProvider
import Logging
import PluginAPI
import SwitchboardTesting

/// The real development identity provider (`Sources/IdentityProvider`, embedded development
/// configuration) on a free loopback port, with its own data directory in which the agent
/// `wlp-dev-agent0` is registered as `switchboard idp --init-agent` does (a copy of one
/// directory initialised per run: every IdP of a run has the same keys, none shares state).
final class DevelopmentIdP: Sendable {
    static let agentID = "wlp-dev-agent0"
    static let agentKeyID = "plugin-test-agent-key"
    static let passwords = ["alice": "alice-dev-password", "bob": "bob-dev-password"]

    let server: RunningServer
    let directory: String
    /// The agent identity the gateway would read from connections.yaml (`agent:`).
    let agent: AgentIdentity

    var issuer: String { server.baseURL }
    /// A user's browser at this IdP.
    var browser: IdPBrowser { IdPBrowser(issuer: issuer) }

    typealias User = IdPBrowser.SignedIn

    private init(server: RunningServer, directory: String, agent: AgentIdentity) {
        self.server = server
        self.directory = directory
        self.agent = agent
    }

    static func start() async throws -> DevelopmentIdP {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("plugin-idp-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: try await DataDirectoryTemplate.shared.path(), toPath: directory)
        var options = Self.options(directory)
        let keyPath = directory + "/agent.pem"
        let pem = try String(contentsOfFile: keyPath, encoding: .utf8)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        options.onServerRunning = { continuation.yield($0) }
        let server = try await TestHTTPServer.run(try await buildIdentityProviderApplication(options), ports: ports)
        return DevelopmentIdP(
            server: server, directory: directory, agent: AgentIdentity(id: agentID, keyID: agentKeyID, privateKey: Secret(pem, source: "file:" + keyPath)))
    }

    /// A quiet IdP on a free port, with its data in `directory`.
    static func options(_ directory: String) -> IdentityProviderOptions {
        var options = IdentityProviderOptions()
        options.port = 0
        options.dataDirectory = directory
        var logger = Logger(label: "development-idp")
        logger.logLevel = .critical
        options.logger = logger
        return options
    }

    /// Signs `username` in through the IdP's login page: a real ID token.
    func signIn(_ username: String) async throws -> User {
        try await browser.signIn(username, password: Self.passwords[username] ?? "")
    }

    /// Takes the IdP off the network (idempotent).
    func stop() async { await server.stop() }

    func remove() async {
        await stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Runs `body` with a fresh IdP, removed afterwards whatever happens.
func withIdP(_ body: (DevelopmentIdP) async throws -> Void) async throws {
    let idp = try await DevelopmentIdP.start()
    do {
        try await body(idp)
    } catch {
        await idp.remove()
        throw error
    }
    await idp.remove()
}

/// One initialised data directory (keys generated, the agent registered), made once per run and
/// copied for every IdP: RSA key generation dominates an IdP's first start.
private actor DataDirectoryTemplate {
    static let shared = DataDirectoryTemplate()
    private var made: Task<String, any Error>?

    func path() async throws -> String {
        if let made { return try await made.value }
        let task = Task {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("plugin-idp-template-\(UUID().uuidString)").path
            _ = try await initializeAgent(
                options: DevelopmentIdP.options(directory), agentID: DevelopmentIdP.agentID, keyID: DevelopmentIdP.agentKeyID,
                privateKeyPath: directory + "/agent.pem")
            return directory
        }
        made = task
        return try await task.value
    }
}
