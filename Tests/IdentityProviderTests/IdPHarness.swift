import Foundation
import IdentityProvider
import NIOHTTP1
import OAuthCore
import Synchronization
import SwitchboardTesting
import SystemTesting

/// A running IdP on a free port with a fresh data directory, and the agent's key registered.
final class IdPHarness: Sendable {
    let server: RunningServer
    let dataDirectory: String
    let agentKey: SigningKey
    /// Every exchange made through `post`/`get`, for the checks every test ends with.
    let exchanges = Mutex<[Exchange]>([])
    static let agentID = "wlp-dev-agent0"

    var issuer: String { server.baseURL }
    var tokenEndpoint: String { issuer + "/oauth2/v1/token" }
    var todoAS: String { issuer + "/oauth2/todo-mcp" }

    private init(server: RunningServer, dataDirectory: String, agentKey: SigningKey) {
        self.server = server
        self.dataDirectory = dataDirectory
        self.agentKey = agentKey
    }

    /// `port` 0 picks a free one; a fixed port (e.g. the one of a stopped harness) keeps the issuer.
    /// `configPath` replaces the embedded development configuration; `extraAgents` get a key each
    /// too (`<data dir>/<agent id>.pem`, kid `<agent id>-key`).
    static func start(dataDirectory: String? = nil, port: Int = 0, configPath: String? = nil, extraAgents: [String] = []) async throws -> IdPHarness {
        let dir = dataDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("idp-test-\(UUID().uuidString)").path
        if dataDirectory == nil, configPath == nil {
            // RSA key generation dominates an IdP's first start: start from a copy of one
            // initialised data directory (its own SQLite file, the same keys).
            try FileManager.default.copyItem(atPath: try await IdPDataTemplate.shared.path(agentID: agentID, keyID: "test-agent-key"), toPath: dir)
        }
        var options = IdentityProviderOptions()
        options.port = port
        options.dataDirectory = dir
        options.configPath = configPath
        options.logger = .quiet("idp-under-test")
        let keyPath = dir + "/agent.pem"
        if !FileManager.default.fileExists(atPath: keyPath) {
            _ = try await initializeAgent(options: options, agentID: agentID, keyID: "test-agent-key", privateKeyPath: keyPath)
        }
        let key = try SigningKey(pem: try String(contentsOfFile: keyPath, encoding: .utf8), kid: "test-agent-key")
        for agent in extraAgents where !FileManager.default.fileExists(atPath: dir + "/\(agent).pem") {
            _ = try await initializeAgent(options: options, agentID: agent, keyID: "\(agent)-key", privateKeyPath: dir + "/\(agent).pem")
        }
        let server = try await IdentityProviderService.start(options)
        return IdPHarness(server: server, dataDirectory: dir, agentKey: key)
    }

    func stop(keepData: Bool = false) async {
        await server.stop()
        if !keepData { try? FileManager.default.removeItem(atPath: dataDirectory) }
    }

    struct Exchange {
        var method: String
        var url: String
        var answer: Answer
    }

    typealias Answer = HTTPAnswer

    /// POSTs a form to `url`.
    func post(_ url: String, form: [(String, String)], headers: [(String, String)] = []) async throws -> Answer {
        try await send(.POST, url, headers: [("Content-Type", "application/x-www-form-urlencoded")] + headers, body: TestHTTP.form(form))
    }

    /// POSTs `body` as it is, with `contentType`.
    func post(_ url: String, body: String, contentType: String) async throws -> Answer {
        try await send(.POST, url, headers: [("Content-Type", contentType)], body: body)
    }

    func get(_ url: String, headers: [(String, String)] = []) async throws -> Answer {
        try await send(.GET, url, headers: headers, body: nil)
    }

    /// Every request of the tests goes here: sent with ``TestHTTP`` (no redirect followed), recorded.
    func send(_ method: HTTPMethod, _ url: String, headers: [(String, String)], body: String?) async throws -> Answer {
        let answer = try await TestHTTP.send(method, url, headers: headers, body: body, timeout: .seconds(20))
        exchanges.withLock { $0.append(Exchange(method: method.rawValue, url: url, answer: answer)) }
        return answer
    }

    /// A client assertion for `endpoint` signed with the registered agent key.
    func assertion(for endpoint: String) throws -> [(String, String)] {
        try ClientAssertion.formFields(clientID: Self.agentID, tokenEndpoint: endpoint, key: agentKey)
    }

    /// A client assertion for `endpoint` by one of the `extraAgents`.
    func assertion(for endpoint: String, agent: String) throws -> [(String, String)] {
        let key = try SigningKey(pem: try String(contentsOfFile: dataDirectory + "/\(agent).pem", encoding: .utf8), kid: "\(agent)-key")
        return try ClientAssertion.formFields(clientID: agent, tokenEndpoint: endpoint, key: key)
    }
}
