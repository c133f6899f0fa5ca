import Foundation
import SwitchboardTesting
import Testing

/// todo0 as an OAuth protected resource: RFC 9728 metadata, 401 challenges, `mcp:connect`,
/// per-tool scopes as HTTP 403 `insufficient_scope`, and the Origin check.
@Suite("Authorization")
struct AuthorizationTests {
    @Test(arguments: ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"])
    func protectedResourceMetadata(path: String) async throws {
        try await withTodo0 { h in
            let answer = try await h.send(.GET, h.mcpBase + path)
            #expect(answer.status == 200, "\(answer)")
            #expect(answer.contentType.hasPrefix("application/json"))
            let doc = try #require(answer.jsonValue)
            #expect(doc["resource"]?.string == Todo0Harness.resource)
            #expect(doc["authorization_servers"] == .array([.string(h.issuer.issuer)]))
            #expect(Set(doc["scopes_supported"]?.array?.compactMap(\.string) ?? []) == Set(Todo0Harness.allScopes))
            #expect(doc["bearer_methods_supported"] == ["header"])
        }
    }

    @Test func noTokenIs401WithResourceMetadataAndNoErrorCode() async throws {
        try await withTodo0 { h in
            let requests: [(String, Answer)] = [
                ("POST", try await h.postMCP(#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, token: nil)),
                ("GET", try await h.send(.GET, h.mcpURL, headers: [("Accept", "text/event-stream")])),
                ("DELETE", try await h.send(.DELETE, h.mcpURL, headers: [("Mcp-Session-Id", "x")])),
                ("POST empty", try await h.postMCP(#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, token: nil, headers: [("Authorization", "")])),
            ]
            for (what, answer) in requests {
                #expect(answer.status == 401, "\(what): \(answer)")
                let header = answer.header("WWW-Authenticate") ?? ""
                #expect(header.hasPrefix("Bearer "), "\(what): \(header)")
                #expect(answer.challenge["resource_metadata"] == Todo0Harness.resourceMetadataURL, "\(what): \(header)")
                #expect(answer.challenge["error"] == nil, "\(what): \(header)")
            }
        }
    }

    /// Tokens that must be refused with 401 `invalid_token`.
    static func badTokens(_ h: Todo0Harness) -> [(String, String)] {
        let now = Int(Date().timeIntervalSince1970)
        return [
            ("garbage", "not-a-jwt"),
            ("two parts", "abc.def"),
            ("expired", h.token(claims: ["iat": now - 1200, "exp": now - 600])),
            ("not yet valid", h.token(claims: ["nbf": now + 600, "exp": now + 1200])),
            ("issued in the future", h.token(claims: ["iat": now + 600, "exp": now + 1200])),
            ("lifetime too long", h.token(claims: ["iat": now, "exp": now + 10 * 86_400])),
            ("no exp", h.token(claims: ["exp": NSNull()])),
            ("wrong audience", h.token(claims: ["aud": "http://127.0.0.1:5002/other"])),
            ("audience of another server", h.token(claims: ["aud": "http://127.0.0.1:9999/mcp"])),
            ("wrong issuer claim", h.token(claims: ["iss": "http://evil.example"])),
            ("no issuer claim", h.token(claims: ["iss": NSNull()])),
            ("signed by a key the issuer does not publish", h.token(key: .foreignRSA)),
            ("unknown kid", h.token(header: ["kid": "no-such-key"])),
            ("typ JWT (an ID token)", h.token(header: ["typ": "JWT"])),
            ("no typ", h.token(header: ["typ": NSNull()])),
            ("ID-JAG typ", h.token(header: ["typ": "oauth-id-jag+jwt"])),
            ("alg none", h.token(key: .none)),
            ("HS256 with the kid of the RSA key", h.token(key: .hs256("secret"))),
            ("no sub", h.token(claims: ["sub": NSNull(), "uid": NSNull()])),
            ("tampered payload", tamper(h.token("user-b"), to: "user-a")),
        ]
    }

    /// Swaps the payload of `token` for one naming `user`, keeping the signature.
    static func tamper(_ token: String, to user: String) -> String {
        let parts = token.split(separator: ".").map(String.init)
        guard parts.count == 3, let data = Data(base64URL: parts[1]),
              var claims = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return token }
        claims["sub"] = user
        claims["uid"] = user
        let payload = (try? JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])) ?? Data()
        return parts[0] + "." + payload.base64URL + "." + parts[2]
    }

    @Test func invalidTokensAre401InvalidToken() async throws {
        try await withTodo0 { h in
            for (what, token) in Self.badTokens(h) {
                let answer = try await h.postMCP(#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, token: token, headers: [("MCP-Protocol-Version", "2025-11-25")])
                #expect(answer.status == 401, "\(what): \(answer)")
                #expect(answer.challenge["error"] == "invalid_token", "\(what): \(answer.header("WWW-Authenticate") ?? "-")")
                #expect(answer.challenge["resource_metadata"] == Todo0Harness.resourceMetadataURL, "\(what)")
                #expect(answer.result == nil)

                let initialize = try await h.initialize(version: "2025-11-25", token: token)
                #expect(initialize.status == 401, "\(what): initialize \(initialize)")
                #expect(initialize.header("Mcp-Session-Id") == nil)

                let stateless = try await MCPClient.connect(.stateless, h, token: token).call("create-todo", ["title": "sneaky"])
                #expect(stateless.status == 401, "\(what): stateless \(stateless)")
                #expect(stateless.challenge["error"] == "invalid_token")

                let rest = try await h.rest(.GET, "/api/todos", token: token)
                #expect(rest.status == 401, "\(what): REST \(rest)")
                #expect(rest.challenge["error"] == "invalid_token", "\(what): REST")
            }
            // Nothing was written for anyone.
            let alice = try await MCPClient.connect(.stateless, h, token: h.token("user-a"))
            #expect(try await alice.todos().isEmpty)
        }
    }

    @Test func otherSchemesAndQueryStringTokensAre401() async throws {
        try await withTodo0 { h in
            let token = h.token()
            let body = #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#
            let basic = try await h.postMCP(body, token: nil, headers: [("Authorization", "Basic dXNlcjpwYXNz")])
            #expect(basic.status == 401, "\(basic)")
            let bare = try await h.postMCP(body, token: nil, headers: [("Authorization", token)])
            #expect(bare.status == 401, "\(bare)")
            let query = try await h.send(.POST, h.mcpURL + "?access_token=\(token)", body: body,
                                         headers: [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")])
            #expect(query.status == 401, "\(query)")
            // A lower-case scheme is still the Bearer scheme (RFC 7235: case-insensitive).
            let lower = try await h.postMCP(body, token: nil, headers: [("Authorization", "bearer \(token)")])
            #expect(lower.status == 200, "\(lower)")
        }
    }

    @Test func scopeClaimAsASpaceSeparatedStringIsHonoured() async throws {
        try await withTodo0 { h in
            let token = h.token(claims: ["scp": NSNull(), "scope": "mcp:connect mcp:tools:read"])
            let client = try await MCPClient.connect(.stateless, h, token: token)
            #expect(try await client.call("get-todos").isError == false)
            #expect(try await client.call("create-todo", ["title": "x"]).status == 403)
        }
    }

    @Test("a token without mcp:connect is 403 insufficient_scope", arguments: MCPMode.allCases)
    func withoutConnect(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let token = h.token(scopes: [Todo0Harness.read, Todo0Harness.manage])
            let answer: Answer
            if mode == .stateless {
                answer = try await MCPClient.connect(.stateless, h, token: token).call("create-todo", ["title": "x"])
            } else {
                answer = try await h.initialize(version: mode.rawValue, token: token)
                #expect(answer.header("Mcp-Session-Id") == nil)
            }
            #expect(answer.status == 403, "\(answer)")
            #expect(answer.challenge["error"] == "insufficient_scope", "\(answer.header("WWW-Authenticate") ?? "-")")
            let scope = Set((answer.challenge["scope"] ?? "").split(separator: " ").map(String.init))
            #expect(scope.contains(Todo0Harness.connect), "\(scope)")
            #expect(scope.isSuperset(of: [Todo0Harness.read, Todo0Harness.manage]), "held scopes are listed too: \(scope)")

            // A session opened with mcp:connect cannot be used by a token that lost it.
            if mode != .stateless {
                let client = try await MCPClient.connect(mode, h, token: h.token())
                let later = try await client.with(token: token).call("get-todos")
                #expect(later.status == 403, "\(later)")
            }
            #expect(try await MCPClient.connect(.stateless, h, token: h.token()).todos().isEmpty)
        }
    }

    @Test("tool scopes: 403 insufficient_scope listing every scope needed", arguments: MCPMode.allCases)
    func toolScopes(mode: MCPMode) async throws {
        try await withTodo0 { h in
            let full = try await MCPClient.connect(mode, h, token: h.token())
            let id = try await full.create("Existing")
            let readOnly = try await MCPClient.connect(mode, h, token: h.token(scopes: [Todo0Harness.connect, Todo0Harness.read]))
            let manageOnly = try await MCPClient.connect(mode, h, token: h.token(scopes: [Todo0Harness.connect, Todo0Harness.manage]))
            let connectOnly = try await MCPClient.connect(mode, h, token: h.token(scopes: [Todo0Harness.connect]))

            // The read-only token lists todos but changes nothing.
            #expect(try await readOnly.call("get-todos").isError == false)
            let refusals: [(MCPClient, String, JSON, Set<String>)] = [
                (readOnly, "create-todo", ["title": "Refused"], [Todo0Harness.connect, Todo0Harness.manage, Todo0Harness.read]),
                (readOnly, "toggle-todo", ["id": .number(Double(id))], [Todo0Harness.connect, Todo0Harness.manage, Todo0Harness.read]),
                (readOnly, "delete-todo", ["id": .number(Double(id))], [Todo0Harness.connect, Todo0Harness.manage, Todo0Harness.read]),
                (manageOnly, "get-todos", [:], [Todo0Harness.connect, Todo0Harness.manage, Todo0Harness.read]),
                (connectOnly, "get-todos", [:], [Todo0Harness.connect, Todo0Harness.read]),
                (connectOnly, "create-todo", ["title": "Refused"], [Todo0Harness.connect, Todo0Harness.manage]),
            ]
            for (client, tool, arguments, expected) in refusals {
                let answer = try await client.call(tool, arguments)
                #expect(answer.status == 403, "\(tool): \(answer)")
                #expect(answer.result == nil, "\(tool): \(answer)")
                let header = answer.header("WWW-Authenticate") ?? ""
                #expect(header.hasPrefix("Bearer "), "\(tool): \(header)")
                #expect(answer.challenge["error"] == "insufficient_scope", "\(tool): \(header)")
                let scope = Set((answer.challenge["scope"] ?? "").split(separator: " ").map(String.init))
                #expect(scope == expected, "\(tool): \(header)")
                #expect(answer.challenge["resource_metadata"] == Todo0Harness.resourceMetadataURL, "\(tool): \(header)")
            }
            // Nothing was written.
            let todos = try await full.todos()
            #expect(todos.count == 1)
            #expect(todos.first?["id"]?.int == id)
            #expect(todos.first?["title"] == "Existing")
            #expect(todos.first?["done"] == false)
            // tools/list needs only mcp:connect.
            #expect(try await connectOnly.request("tools/list").result?["tools"]?.array?.count == 4)
        }
    }

    @Test func scopesOfTheExactHeaderShape() async throws {
        try await withTodo0 { h in
            let client = try await MCPClient.connect(.stateless, h, token: h.token(scopes: [Todo0Harness.connect, Todo0Harness.read]))
            let answer = try await client.call("create-todo", ["title": "x"])
            let header = try #require(answer.header("WWW-Authenticate"))
            #expect(header.hasPrefix(#"Bearer error="insufficient_scope", scope="mcp:connect mcp:tools:manage mcp:tools:read""#), "\(header)")
        }
    }

    // MARK: Origin

    @Test(arguments: ["http://evil.example", "https://127.0.0.1.evil.example", "http://localhost.evil.example:3000", "null", "https://127.0.0.1:3000"])
    func foreignOriginsAre403(origin: String) async throws {
        try await withTodo0 { h in
            let initialize = try await h.initialize(version: "2025-11-25", token: h.token(), headers: [("Origin", origin)])
            #expect(initialize.status == 403, "\(initialize)")
            #expect(initialize.header("Mcp-Session-Id") == nil)
            let client = try await MCPClient.connect(.stateless, h, token: h.token())
            let create = try await client.request("tools/call", ["name": "create-todo", "arguments": ["title": "x"]], headers: [("Origin", origin)])
            #expect(create.status == 403, "\(create)")
            // Even without a token: the Origin check comes first.
            let anonymous = try await h.postMCP(#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, token: nil, headers: [("Origin", origin)])
            #expect(anonymous.status == 403, "\(anonymous)")
            let get = try await h.send(.GET, h.mcpURL, headers: [("Origin", origin), ("Authorization", "Bearer \(h.token())"), ("Accept", "text/event-stream")])
            #expect(get.status == 403, "\(get)")
            #expect(try await client.todos().isEmpty)
        }
    }

    /// `http://127.0.0.1:*` means "any port": what follows the colon must be a port number.
    @Test(arguments: ["http://127.0.0.1:3000.evil.example", "http://localhost:80@evil.example"])
    func anOriginWhosePortIsNotANumberIsRefused(origin: String) async throws {
        try await withTodo0 { h in
            let answer = try await h.initialize(version: "2025-11-25", token: h.token(), headers: [("Origin", origin)])
            #expect(answer.status == 403, "\(answer)")
        }
    }

    @Test(arguments: ["http://127.0.0.1:3000", "http://localhost:8080", "http://127.0.0.1", nil] as [String?])
    func localOriginsAreAllowed(origin: String?) async throws {
        try await withTodo0 { h in
            let headers = origin.map { [("Origin", $0)] } ?? []
            let initialize = try await h.initialize(version: "2025-11-25", token: h.token(), headers: headers)
            #expect(initialize.status == 200, "\(initialize)")
            let client = try await MCPClient.connect(.stateless, h, token: h.token())
            let create = try await client.request("tools/call", ["name": "create-todo", "arguments": ["title": "x"]], headers: headers)
            #expect(create.status == 200, "\(create)")
            #expect(create.isError == false)
        }
    }
}

extension Data {
    init?(base64URL: String) {
        var s = base64URL.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        self.init(base64Encoded: s)
    }

    var base64URL: String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
