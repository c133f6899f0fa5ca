import Foundation
public import IdentityProvider
public import PluginAPI
public import SwitchboardTesting

/// The real development identity provider (`Sources/IdentityProvider`, embedded development
/// configuration) on a free loopback port, with its own data directory in which the agent
/// `wlp-dev-agent0` is registered as `switchboard idp --init-agent` does (a copy of one
/// directory initialised per run, ``IdPDataTemplate``: every IdP of a run has the same keys,
/// none shares state). For the plugin suites, which see the IdP only as a plugin would.
public final class DevelopmentIdP: Sendable {
    public static let agentID = "wlp-dev-agent0"
    public static let agentKeyID = "plugin-test-agent-key"
    public static let passwords = ["alice": "alice-dev-password", "bob": "bob-dev-password"]

    public let server: RunningServer
    public let directory: String
    /// The agent identity the gateway would read from connections.yaml (`agent:`).
    public let agent: AgentIdentity

    public var issuer: String { server.baseURL }
    /// A user's browser at this IdP.
    public var browser: IdPBrowser { IdPBrowser(issuer: issuer) }

    public typealias User = IdPBrowser.SignedIn

    private init(server: RunningServer, directory: String, agent: AgentIdentity) {
        self.server = server
        self.directory = directory
        self.agent = agent
    }

    public static func start() async throws -> DevelopmentIdP {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("plugin-idp-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: try await IdPDataTemplate.shared.path(agentID: agentID, keyID: agentKeyID), toPath: directory)
        let keyPath = directory + "/agent.pem"
        let pem = try String(contentsOfFile: keyPath, encoding: .utf8)
        let server = try await IdentityProviderService.start(options(directory))
        return DevelopmentIdP(
            server: server, directory: directory, agent: AgentIdentity(id: agentID, keyID: agentKeyID, privateKey: Secret(pem, source: "file:" + keyPath)))
    }

    /// A quiet IdP on a free port, with its data in `directory`.
    public static func options(_ directory: String) -> IdentityProviderOptions {
        var options = IdentityProviderOptions()
        options.port = 0
        options.dataDirectory = directory
        options.logger = .quiet("development-idp")
        return options
    }

    /// Signs `username` in through the IdP's login page: a real ID token.
    public func signIn(_ username: String) async throws -> User {
        try await browser.signIn(username, password: Self.passwords[username] ?? "")
    }

    /// Takes the IdP off the network (idempotent).
    public func stop() async { await server.stop() }

    public func remove() async {
        await stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Runs `body` with a fresh ``DevelopmentIdP``, removed afterwards whatever happens.
public func withDevelopmentIdP(_ body: (DevelopmentIdP) async throws -> Void) async throws {
    let idp = try await DevelopmentIdP.start()
    try await withCleanup({ try await body(idp) }, cleanup: { await idp.remove() })
}
