import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardJSON

extension TurnRunner {
    enum Execution: Sendable {
        case done(ToolCallRecord, resultText: String)
        case needsConsent(ToolBinding, uri: String)
    }

    /// The gateway's one MCP endpoint: every MCP server the user reaches, merged.
    static let mcpRoute = "/mcp"

    /// The tools of this turn, listed now through the gateway's `/mcp` (every enabled MCP
    /// server at once; one that needs consent is reported once per conversation, one that
    /// fails is left out) and the GitHub application when the registry has it.
    func catalog(user: SignedInUser, state: inout ConversationState) async throws(Failure) -> (ToolCatalog, [ConsentCard]) {
        let servers: [GatewayClient.Listed]
        let applications: [GatewayClient.Listed]
        do throws(GatewayCallFailure) {
            servers = try await gateway.connections(kind: "mcp_server", idToken: user.idToken)
            applications = try await gateway.connections(kind: "application", idToken: user.idToken)
        } catch {
            switch error {
            case .failed(let code, let message): throw .gateway(code: code, message: message)
            default: throw .gateway(code: "gateway_error", message: "the gateway could not list the connections")
            }
        }
        let titles = Dictionary(servers.map { ($0.name, $0.title) }, uniquingKeysWith: { a, _ in a })
        var offers: [ToolBinding] = []
        var consents: [ConsentCard] = []
        var session = state.mcpSessions[Self.mcpRoute]
        do throws(GatewayCallFailure) {
            let (tools, unavailable) = try await mcp.listTools(route: Self.mcpRoute, state: &session, idToken: user.idToken)
            state.mcpSessions[Self.mcpRoute] = session
            offers = ToolCatalog.offers(aggregated: tools, route: Self.mcpRoute, titles: titles)
            var missing: Set<String> = []
            for failure in unavailable {
                guard let name = failure["connection"]?.string else { continue }
                missing.insert(name)
                if let uri = failure["interaction_uri"]?.string {
                    if state.listConsentsShown.insert(name).inserted {
                        consents.append(ConsentCard(id: "list-" + name, connection: name, title: titles[name] ?? name, interactionURI: uri, waiting: false))
                    }
                } else {
                    logger.warning("tools of a connection could not be listed", metadata: [
                        "connection": "\(name)", "reason": "\(failure["code"]?.string ?? "unknown")",
                    ])
                }
            }
            state.listConsentsShown.subtract(Set(servers.map(\.name)).subtracting(missing))
        } catch {
            state.mcpSessions[Self.mcpRoute] = nil
            logger.warning("the gateway's MCP endpoint could not list tools", metadata: ["reason": "\(error)"])
        }
        if let github = applications.first(where: { $0.name == githubConnection && $0.enabled }), let route = github.route {
            offers += ToolCatalog.githubOffers(connection: github.name, title: github.title, route: route)
        }
        return (ToolCatalog(offers), consents)
    }

    /// One call through the gateway.
    func execute(_ use: ToolUse, catalog: ToolCatalog, user: SignedInUser, state: inout ConversationState) async -> Execution {
        let started = ContinuousClock.now
        guard let binding = catalog[use.name] else {
            let record = ToolCallRecord(id: use.id, name: use.name, connection: "", tool: use.name, arguments: use.input,
                                        result: ["error": "unknown_tool", "message": .string("there is no tool named \(use.name)")], isError: true, durationMS: 0)
            return .done(record, resultText: "There is no tool named \(use.name).")
        }
        var result: JSONValue
        var isError: Bool
        var text: String
        var stepUp: [String]?
        do throws(GatewayCallFailure) {
            switch binding.target {
            case .mcp(let route, let tool):
                var session = state.mcpSessions[route]
                let outcome = try await mcp.request(
                    route: route, method: "tools/call", params: ["name": .string(tool), "arguments": use.input], state: &session, idToken: user.idToken)
                state.mcpSessions[route] = session
                // The gateway answers a call that needs the user's consent with a tool error naming where.
                if let uri = outcome.result["_meta"]?["switchboard/failure"]?["interaction_uri"]?.string {
                    return .needsConsent(binding, uri: uri)
                }
                result = outcome.result
                isError = outcome.result["isError"]?.bool == true
                text = Self.text(ofToolResult: outcome.result)
                stepUp = outcome.stepUpScopes
            case .githubListRepos(let route):
                (result, isError, text) = try await rest(.GET, route + "/user/repos", body: nil, user: user)
            case .githubCommentOnPR(let route):
                if let problem = Self.commentProblem(use.input) {
                    (result, isError, text) = (["error": "invalid_arguments", "message": .string(problem)], true, problem)
                } else {
                    let path = "\(route)/repos/\(Self.segment(use.input["owner"]))/\(Self.segment(use.input["repo"]))/issues/\(use.input["pr_number"]?.integer ?? 0)/comments"
                    (result, isError, text) = try await rest(.POST, path, body: ["body": use.input["body"] ?? ""], user: user)
                }
            }
        } catch {
            switch error {
            case .interactionRequired(let uri, _):
                return .needsConsent(binding, uri: uri)
            case .failed(let code, let message):
                (result, isError, text) = (["error": .string(code), "message": .string(message)], true, "The call failed: \(message) (\(code)).")
            case .sessionExpired:
                (result, isError, text) = (["error": "mcp_session_lost"], true, "The MCP server lost the session.")
            }
        }
        let elapsed = ContinuousClock.now - started
        let ms = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        logger.info("tool call", metadata: [
            "connection": "\(binding.connection)", "tool": "\(binding.tool)", "is_error": "\(isError)", "duration_ms": "\(ms)",
            "step_up": "\(stepUp?.joined(separator: " ") ?? "")",
        ])
        let record = ToolCallRecord(id: use.id, name: binding.name, connection: binding.connection, tool: binding.tool, arguments: use.input,
                                    result: result, isError: isError, durationMS: ms, stepUp: stepUp.map { .init(scopes: $0) })
        return .done(record, resultText: text)
    }

    /// A REST call through `/rest/{name}/…`: (the answer as JSON, is it an error, text for the model).
    private func rest(_ method: HTTPMethod, _ path: String, body: JSONValue?, user: SignedInUser) async throws(GatewayCallFailure) -> (JSONValue, Bool, String) {
        let answer = try await gateway.send(method, path, idToken: user.idToken, headers: [("Accept", "application/json")], body: body.map { ByteBuffer(bytes: $0.encoded()) })
        if answer.status == 401 || answer.status == 403 || answer.status >= 500, answer.json?["error"]?.string != nil {
            throw GatewayClient.failure(from: answer)  // the gateway's own refusal (consent, exchange failure, upstream down)
        }
        let json = answer.json ?? .string(String(buffer: answer.body))
        let ok = (200..<300).contains(answer.status)
        let text = String(decoding: json.encoded().prefix(20_000), as: UTF8.self)
        return (json, !ok, ok ? text : "HTTP \(answer.status): \(text)")
    }

    /// What a model reads of an MCP tool result: its text blocks, or the structured content.
    static func text(ofToolResult result: JSONValue) -> String {
        let texts = (result["content"]?.array ?? []).compactMap { $0["type"]?.string == "text" ? $0["text"]?.string : nil }
        if !texts.isEmpty { return String(texts.joined(separator: "\n").prefix(20_000)) }
        if let structured = result["structuredContent"] { return String(decoding: structured.encoded().prefix(20_000), as: UTF8.self) }
        return "(no content)"
    }

    /// Owner and repository become path segments: only GitHub's own characters pass.
    static func commentProblem(_ input: JSONValue) -> String? {
        func valid(_ v: JSONValue?) -> Bool {
            guard let s = v?.string, !s.isEmpty, s.count <= 100, s != ".", s != ".." else { return false }
            return s.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }
        }
        guard valid(input["owner"]) else { return "owner must be a GitHub account name (letters, digits, - _ .)" }
        guard valid(input["repo"]) else { return "repo must be a repository name (letters, digits, - _ .)" }
        guard let n = input["pr_number"]?.integer, n >= 1 else { return "pr_number must be a whole number of at least 1" }
        guard let body = input["body"]?.string, !body.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return "body must be non-empty text" }
        return nil
    }

    static func segment(_ v: JSONValue?) -> String { v?.string ?? "" }
}
