import Foundation
import IdentityProvider
import Logging
import PluginAPI
import SwitchboardTesting

/// The real development identity provider (`Sources/IdentityProvider`, embedded development
/// configuration) on a free loopback port with a fresh data directory, and the agent
/// `wlp-dev-agent0` registered with a new key, as `switchboard idp --init-agent` does.
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
        var options = IdentityProviderOptions()
        options.port = 0
        options.dataDirectory = directory
        var logger = Logger(label: "development-idp")
        logger.logLevel = .critical
        options.logger = logger
        let keyPath = directory + "/agent.pem"
        _ = try await initializeAgent(options: options, agentID: agentID, keyID: agentKeyID, privateKeyPath: keyPath)
        let pem = try String(contentsOfFile: keyPath, encoding: .utf8)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        options.onServerRunning = { continuation.yield($0) }
        let server = try await TestHTTPServer.run(try await buildIdentityProviderApplication(options), ports: ports)
        return DevelopmentIdP(
            server: server, directory: directory, agent: AgentIdentity(id: agentID, keyID: agentKeyID, privateKey: Secret(pem, source: "file:" + keyPath)))
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
