import AsyncHTTPClient
import Foundation
import IdentityProvider
import Logging
import NIOCore
import NIOHTTP1
import OAuthCore
import SwitchboardTesting

/// A running IdP on a free port with a fresh data directory, and the agent's key registered.
final class IdPHarness: Sendable {
    let server: RunningServer
    let dataDirectory: String
    let agentKey: SigningKey
    static let agentID = "wlp-dev-agent0"

    var issuer: String { server.baseURL }
    var tokenEndpoint: String { issuer + "/oauth2/v1/token" }
    var todoAS: String { issuer + "/oauth2/todo-mcp" }

    private init(server: RunningServer, dataDirectory: String, agentKey: SigningKey) {
        self.server = server
        self.dataDirectory = dataDirectory
        self.agentKey = agentKey
    }

    static func start(dataDirectory: String? = nil) async throws -> IdPHarness {
        let dir = dataDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("idp-test-\(UUID().uuidString)").path
        var options = IdentityProviderOptions()
        options.port = 0
        options.dataDirectory = dir
        var logger = Logger(label: "idp-under-test")
        logger.logLevel = .critical
        options.logger = logger
        let keyPath = dir + "/agent.pem"
        if !FileManager.default.fileExists(atPath: keyPath) {
            _ = try await initializeAgent(options: options, agentID: agentID, keyID: "test-agent-key", privateKeyPath: keyPath)
        }
        let key = try SigningKey(pem: try String(contentsOfFile: keyPath, encoding: .utf8), kid: "test-agent-key")
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

    func get(_ url: String, headers: [(String, String)] = []) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        for (n, v) in headers { request.headers.add(name: n, value: v) }
        return try await send(request)
    }

    private func send(_ request: HTTPClientRequest) async throws -> Answer {
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(20))
        let body = try await response.body.collect(upTo: 4 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers, body: String(buffer: body))
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
}
