import AsyncHTTPClient
import Foundation
import NIOHTTP1
import OAuthCore
import SwitchboardTesting
import SystemTesting
import Testing
import Todo0

/// One issuer for the whole run (RSA key generation is the slow part of starting one).
actor SharedIssuer {
    static let shared = SharedIssuer()
    private var issuer: TestIssuer?

    func get() async throws -> TestIssuer {
        if let issuer { return issuer }
        let started = try await TestIssuer.start()
        issuer = started
        return started
    }
}

/// A todo0 running on two free loopback ports (MCP and REST) with its own data directory,
/// accepting access tokens of the shared ``TestIssuer`` for ``Todo0Harness/resource``.
final class Todo0Harness: Sendable {
    static let resource = "http://127.0.0.1:5002/mcp"
    static let resourceMetadataURL = "http://127.0.0.1:5002/.well-known/oauth-protected-resource/mcp"
    static let connect = "mcp:connect"
    static let read = "mcp:tools:read"
    static let manage = "mcp:tools:manage"
    static let allScopes = [connect, read, manage]
    static let client = HTTPClient.shared

    let issuer: TestIssuer
    let service: Todo0Service
    let dataDirectory: String

    var mcpPort: Int { service.mcpPort }
    var restPort: Int { service.restPort }
    var mcpBase: String { "http://127.0.0.1:\(mcpPort)" }
    var mcpURL: String { mcpBase + "/mcp" }
    var restBase: String { "http://127.0.0.1:\(restPort)" }

    private init(issuer: TestIssuer, service: Todo0Service, dataDirectory: String) {
        self.issuer = issuer
        self.service = service
        self.dataDirectory = dataDirectory
    }

    static func start(dataDirectory: String? = nil, alwaysSSE: Bool = false) async throws -> Todo0Harness {
        let issuer = try await SharedIssuer.shared.get()
        let dir = dataDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("todo0-test-\(UUID().uuidString)").path
        var options = Todo0Options()
        options.mcpPort = 0
        options.restPort = 0
        options.dataDirectory = dir
        options.authorizationServer = issuer.issuer
        options.resource = resource
        options.alwaysSSE = alwaysSSE
        options.logger = .quiet("todo0-under-test")
        return Todo0Harness(issuer: issuer, service: try await Todo0Service.start(options), dataDirectory: dir)
    }

    /// Stops todo0 and waits for it; removes the data directory unless `keepData`.
    func stop(keepData: Bool = false) async {
        await service.stop()
        if !keepData { try? FileManager.default.removeItem(atPath: dataDirectory) }
    }

    // MARK: tokens

    /// An RFC 9068 access token for this todo0; `claims` and `header` override the defaults
    /// (an `NSNull()` claim removes it).
    func token(
        _ user: String = "user-a", scopes: [String] = Todo0Harness.allScopes, claims: [String: any Sendable] = [:],
        header: [String: any Sendable] = [:], key: TestIssuer.Key = .rsa
    ) -> String {
        let now = Int(Date().timeIntervalSince1970)
        var c: [String: any Sendable] = [
            "iss": issuer.issuer, "sub": user, "uid": user, "aud": Self.resource, "scp": scopes, "client_id": "agent",
            "iat": now, "exp": now + 600, "jti": UUID().uuidString,
        ]
        for (k, v) in claims {
            if v is NSNull { c[k] = nil } else { c[k] = v }
        }
        var h: [String: any Sendable] = ["typ": "at+jwt"]
        for (k, v) in header { h[k] = v }
        return issuer.sign(claims: c, header: h, key: key)
    }

    // MARK: HTTP

    func send(_ method: HTTPMethod, _ url: String, body: String? = nil, headers: [(String, String)] = []) async throws -> Answer {
        try await TestHTTP.send(method, url, headers: headers, body: body, client: Self.client)
    }

    /// A raw POST to `/mcp`: Content-Type JSON, the usual MCP Accept and the bearer token, each
    /// unless `headers` name the same field (then theirs replaces it).
    func postMCP(_ body: String, token: String?, headers: [(String, String)] = [], accept: String = "application/json, text/event-stream") async throws -> Answer {
        var all: [(String, String)] = [("Content-Type", "application/json"), ("Accept", accept)]
        if let token { all.append(("Authorization", "Bearer \(token)")) }
        let replaced = Set(headers.map { $0.0.lowercased() })
        all = all.filter { !replaced.contains($0.0.lowercased()) } + headers
        return try await send(.POST, mcpURL, body: body, headers: all)
    }

    /// An `initialize` request (no session yet).
    func initialize(version: String, token: String, headers: [(String, String)] = []) async throws -> Answer {
        let message: JSON = [
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": ["protocolVersion": .string(version), "capabilities": [:], "clientInfo": ["name": "todo0-tests", "version": "1.0"]],
        ]
        return try await postMCP(message.encoded, token: token, headers: headers)
    }

    /// A REST call to `path` with a bearer token and an optional JSON body.
    func rest(_ method: HTTPMethod, _ path: String, token: String?, body: String? = nil) async throws -> Answer {
        var headers: [(String, String)] = [("Accept", "application/json")]
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        if body != nil { headers.append(("Content-Type", "application/json")) }
        return try await send(method, restBase + path, body: body, headers: headers)
    }
}

/// Runs `body` against a fresh todo0 and stops it afterwards, whatever happens.
func withTodo0(alwaysSSE: Bool = false, _ body: (Todo0Harness) async throws -> Void) async throws {
    let harness = try await Todo0Harness.start(alwaysSSE: alwaysSSE)
    try await withCleanup({ try await body(harness) }, cleanup: { await harness.stop() })
}

// MARK: answers

/// One HTTP answer (``HTTPAnswer``), with JSON and SSE views of its body.
typealias Answer = HTTPAnswer

extension HTTPAnswer {
    var isSSE: Bool { contentType.hasPrefix("text/event-stream") }
    var jsonValue: JSON? { JSON.parse(body) }

    /// The `data:` payloads of the SSE events, in order.
    var events: [JSON] {
        body.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n\n").compactMap { block in
            let data = block.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { $0.hasPrefix("data:") }
                .map { line -> String in
                    let rest = line.dropFirst(5)
                    return String(rest.hasPrefix(" ") ? rest.dropFirst() : rest)
                }
            return data.isEmpty ? nil : JSON.parse(data.joined(separator: "\n"))
        }
    }

    /// The JSON-RPC response: the body, or the SSE event that carries an `id`.
    var rpc: JSON? { isSSE ? events.last { $0["id"] != nil && $0["method"] == nil } : jsonValue }
    var result: JSON? { rpc?["result"] }
    var error: JSON? { rpc?["error"] }
    var errorCode: Int? { error?["code"]?.int }
    /// The first text content of a tool result.
    var text: String? { result?["content"]?[0]?["text"]?.string }
    var isError: Bool? { result?["isError"]?.bool }

    /// `WWW-Authenticate` parameters (`key="value"` pairs).
    var challenge: [String: String] { Self.authParams(header("WWW-Authenticate") ?? "") }

    static func authParams(_ header: String) -> [String: String] {
        var out: [String: String] = [:]
        var rest = Substring(header)
        if rest.lowercased().hasPrefix("bearer") { rest = rest.dropFirst(6) }
        while let eq = rest.firstIndex(of: "=") {
            let key = rest[..<eq].trimmingCharacters(in: CharacterSet(charactersIn: " ,"))
            rest = rest[rest.index(after: eq)...]
            guard rest.first == "\"" else { break }
            rest = rest.dropFirst()
            guard let close = rest.firstIndex(of: "\"") else { break }
            out[key] = String(rest[..<close])
            rest = rest[rest.index(after: close)...]
        }
        return out
    }
}

// MARK: MCP clients

/// The three ways to talk to todo0's MCP endpoint.
enum MCPMode: String, Sendable, CaseIterable, CustomStringConvertible {
    case session20250618 = "2025-06-18"
    case session20251125 = "2025-11-25"
    case stateless = "2026-07-28"

    var description: String { rawValue }
    static let sessions: [MCPMode] = [.session20250618, .session20251125]
}

/// An MCP client for one user: a session (after `initialize` + `notifications/initialized`) or
/// stateless 2026-07-28 requests (`Mcp-Method`/`Mcp-Name` headers and the `_meta` envelope).
struct MCPClient: Sendable {
    static let metaVersion = "io.modelcontextprotocol/protocolVersion"
    static let metaCapabilities = "io.modelcontextprotocol/clientCapabilities"

    let harness: Todo0Harness
    var token: String
    let version: String
    let sessionID: String?
    var isStateless: Bool { sessionID == nil }

    static func connect(_ mode: MCPMode, _ harness: Todo0Harness, token: String) async throws -> MCPClient {
        if mode == .stateless { return MCPClient(harness: harness, token: token, version: mode.rawValue, sessionID: nil) }
        let answer = try await harness.initialize(version: mode.rawValue, token: token)
        try #require(answer.status == 200, "initialize: \(answer)")
        let session = try #require(answer.header("Mcp-Session-Id"), "initialize returned no Mcp-Session-Id")
        let client = MCPClient(harness: harness, token: token, version: mode.rawValue, sessionID: session)
        let initialized = try await client.notify("notifications/initialized")
        try #require(initialized.status == 202, "notifications/initialized: \(initialized)")
        return client
    }

    /// This client with another token (same session, if any).
    func with(token: String) -> MCPClient { MCPClient(harness: harness, token: token, version: version, sessionID: sessionID) }

    /// The headers this client sends for `method` (`name`: the tool of a tools/call).
    func headers(for method: String, name: String? = nil) -> [(String, String)] {
        var h: [(String, String)] = [("MCP-Protocol-Version", version)]
        if let sessionID { h.append(("Mcp-Session-Id", sessionID)) }
        if isStateless {
            h.append(("Mcp-Method", method))
            if let name { h.append(("Mcp-Name", name)) }
        }
        return h
    }

    /// `params`, with the 2026-07-28 `_meta` envelope when stateless.
    func envelope(_ params: JSON) -> JSON {
        guard isStateless else { return params }
        var p = params.object ?? [:]
        var meta = p["_meta"]?.object ?? [:]
        meta[Self.metaVersion] = .string(version)
        meta[Self.metaCapabilities] = [:]
        p["_meta"] = .object(meta)
        return .object(p)
    }

    /// A JSON-RPC request; `headers` are added after (and replace) this client's own.
    func request(
        _ method: String, _ params: JSON = [:], id: JSON = 1, headers extra: [(String, String)] = [],
        accept: String = "application/json, text/event-stream"
    ) async throws -> Answer {
        let message: JSON = ["jsonrpc": "2.0", "id": id, "method": .string(method), "params": envelope(params)]
        return try await post(message, method: method, name: params["name"]?.string, extra: extra, accept: accept)
    }

    func notify(_ method: String, _ params: JSON = [:]) async throws -> Answer {
        let message: JSON = ["jsonrpc": "2.0", "method": .string(method), "params": envelope(params)]
        return try await post(message, method: method, name: nil, extra: [], accept: "application/json, text/event-stream")
    }

    private func post(_ message: JSON, method: String, name: String?, extra: [(String, String)], accept: String) async throws -> Answer {
        let replaced = Set(extra.map { $0.0.lowercased() })
        let own = headers(for: method, name: name).filter { !replaced.contains($0.0.lowercased()) }
        return try await harness.postMCP(message.encoded, token: token, headers: own + extra, accept: accept)
    }

    /// tools/call `name` with `arguments`.
    func call(_ name: String, _ arguments: JSON = [:], meta: JSON? = nil, accept: String = "application/json, text/event-stream") async throws -> Answer {
        var params: JSON = ["name": .string(name), "arguments": arguments]
        if let meta { params = ["name": .string(name), "arguments": arguments, "_meta": meta] }
        return try await request("tools/call", params, accept: accept)
    }

    /// tools/call that must succeed at the HTTP and JSON-RPC level; returns the tool result.
    func tool(_ name: String, _ arguments: JSON = [:], sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSON {
        let answer = try await call(name, arguments)
        try #require(answer.status == 200, "\(name): \(answer)", sourceLocation: sourceLocation)
        return try #require(answer.result, "\(name) has no result: \(answer)", sourceLocation: sourceLocation)
    }

    /// Creates a todo and returns its id.
    func create(_ title: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Int {
        let result = try await tool("create-todo", ["title": .string(title)], sourceLocation: sourceLocation)
        try #require(result["isError"] == false, "create-todo failed: \(result)", sourceLocation: sourceLocation)
        return try #require(result["structuredContent"]?["todo"]?["id"]?.int, "create-todo returned no id: \(result)", sourceLocation: sourceLocation)
    }

    /// The user's todos, from get-todos' structured content.
    func todos(sourceLocation: SourceLocation = #_sourceLocation) async throws -> [JSON] {
        let result = try await tool("get-todos", sourceLocation: sourceLocation)
        return try #require(result["structuredContent"]?["todos"]?.array, "get-todos returned no todos: \(result)", sourceLocation: sourceLocation)
    }
}

// MARK: JSON

/// Any JSON value (booleans and numbers kept apart); builds request bodies and reads answers.
enum JSON: Sendable, Equatable, Codable, CustomStringConvertible, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSON].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSON].self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let d):
            if d.rounded() == d, abs(d) < 9e15 { try c.encode(Int64(d)) } else { try c.encode(d) }
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    init(stringLiteral value: String) { self = .string(value) }
    init(integerLiteral value: Int) { self = .number(Double(value)) }
    init(floatLiteral value: Double) { self = .number(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
    init(arrayLiteral elements: JSON...) { self = .array(elements) }
    init(dictionaryLiteral elements: (String, JSON)...) { self = .object(Dictionary(elements, uniquingKeysWith: { a, _ in a })) }
    init(nilLiteral: ()) { self = .null }

    static func parse(_ text: String) -> JSON? { try? JSONDecoder().decode(JSON.self, from: Data(text.utf8)) }

    subscript(_ key: String) -> JSON? { object?[key] }
    subscript(_ index: Int) -> JSON? {
        guard let a = array, a.indices.contains(index) else { return nil }
        return a[index]
    }

    var string: String? { if case .string(let s) = self { s } else { nil } }
    var bool: Bool? { if case .bool(let b) = self { b } else { nil } }
    var number: Double? { if case .number(let d) = self { d } else { nil } }
    var int: Int? { if case .number(let d) = self, d.rounded() == d, abs(d) < 9e15 { Int(d) } else { nil } }
    var array: [JSON]? { if case .array(let a) = self { a } else { nil } }
    var object: [String: JSON]? { if case .object(let o) = self { o } else { nil } }

    var encoded: String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? e.encode(self)) ?? Data("null".utf8), as: UTF8.self)
    }

    var description: String { encoded }
}
