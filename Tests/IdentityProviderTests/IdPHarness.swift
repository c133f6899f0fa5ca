import AsyncHTTPClient
import Foundation
import IdentityProvider
import Logging
import NIOCore
import NIOHTTP1
import OAuthCore
import Synchronization
import SwitchboardTesting

/// A running IdP on a free port with a fresh data directory, and the agent's key registered.
final class IdPHarness: Sendable {
    let server: RunningServer
    let dataDirectory: String
    let agentKey: SigningKey
    /// Every exchange made through `post`/`get`, for the checks every test ends with.
    let exchanges = Mutex<[Exchange]>([])
    static let agentID = "wlp-dev-agent0"
    /// Does not follow redirects: the tests look at the 302s themselves.
    static let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: .init(redirectConfiguration: .disallow))

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
            try FileManager.default.copyItem(atPath: try await DataDirectoryTemplate.shared.path(), toPath: dir)
        }
        var options = IdentityProviderOptions()
        options.port = port
        options.dataDirectory = dir
        options.configPath = configPath
        var logger = Logger(label: "idp-under-test")
        logger.logLevel = .critical
        options.logger = logger
        let keyPath = dir + "/agent.pem"
        if !FileManager.default.fileExists(atPath: keyPath) {
            _ = try await initializeAgent(options: options, agentID: agentID, keyID: "test-agent-key", privateKeyPath: keyPath)
        }
        let key = try SigningKey(pem: try String(contentsOfFile: keyPath, encoding: .utf8), kid: "test-agent-key")
        for agent in extraAgents where !FileManager.default.fileExists(atPath: dir + "/\(agent).pem") {
            _ = try await initializeAgent(options: options, agentID: agent, keyID: "\(agent)-key", privateKeyPath: dir + "/\(agent).pem")
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        options.onServerRunning = { continuation.yield($0) }
        let app = try await buildIdentityProviderApplication(options)
        let server = try await TestHTTPServer.run(app, ports: ports)
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

    struct Answer {
        var status: Int
        var headers: HTTPHeaders
        var body: String
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
    }

    /// POSTs a form to `url`.
    func post(_ url: String, form: [(String, String)], headers: [(String, String)] = []) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        for (n, v) in headers { request.headers.add(name: n, value: v) }
        request.body = .bytes(ByteBuffer(string: Self.encode(form)))
        return try await send(request)
    }

    /// POSTs `body` as it is, with `contentType`.
    func post(_ url: String, body: String, contentType: String) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: contentType)
        request.body = .bytes(ByteBuffer(string: body))
        return try await send(request)
    }

    func get(_ url: String, headers: [(String, String)] = []) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        for (n, v) in headers { request.headers.add(name: n, value: v) }
        return try await send(request)
    }

    private func send(_ request: HTTPClientRequest) async throws -> Answer {
        let response = try await Self.client.execute(request, timeout: .seconds(20))
        let body = try await response.body.collect(upTo: 4 << 20)
        let answer = Answer(status: Int(response.status.code), headers: response.headers, body: String(buffer: body))
        exchanges.withLock { $0.append(Exchange(method: request.method.rawValue, url: request.url, answer: answer)) }
        return answer
    }

    static func encode(_ form: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return form.map { "\($0.0.addingPercentEncoding(withAllowedCharacters: allowed)!)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed)!)" }
            .joined(separator: "&")
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

/// One initialised IdP data directory (keys generated, agent registered), made once per run.
actor DataDirectoryTemplate {
    static let shared = DataDirectoryTemplate()
    private var made: String?

    func path() async throws -> String {
        if let made { return made }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("idp-template-\(UUID().uuidString)").path
        var options = IdentityProviderOptions()
        options.dataDirectory = dir
        var logger = Logger(label: "idp-template")
        logger.logLevel = .critical
        options.logger = logger
        _ = try await initializeAgent(options: options, agentID: IdPHarness.agentID, keyID: "test-agent-key", privateKeyPath: dir + "/agent.pem")
        made = dir
        return dir
    }
}
