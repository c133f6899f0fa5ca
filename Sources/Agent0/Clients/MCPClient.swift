import Foundation
import NIOCore
import SwitchboardJSON

/// What agent0 remembers of one MCP server within a conversation.
struct MCPSessionState: Sendable, Equatable {
    var sessionID: String?
    var protocolVersion: String
}

/// A small MCP client over Streamable HTTP (MCP 2025-06-18 / 2025-11-25) through the gateway's
/// `/mcp` (every server in one) or a `/mcp/{name}`: it reads answers in JSON and in SSE (the swift-sdk's transport cannot read SSE
/// on Linux), keeps the session id, and initializes again when the server forgot the session.
struct MCPClient: Sendable {
    let gateway: GatewayClient
    static let protocolVersion = "2025-11-25"
    static let clientInfo: JSONValue = ["name": "agent0", "title": "Switchboard agent0", "version": "1.0.0"]

    /// A JSON-RPC result, and the scopes a gateway step-up added on the way (if any).
    struct Outcome: Sendable {
        var result: JSONValue
        var stepUpScopes: [String]?
    }

    /// Sends one request, initializing first when there is no session yet, and once more when
    /// the server says the session is gone. A JSON-RPC error from the server is `.failed`.
    func request(
        route: String, method: String, params: JSONValue, state: inout MCPSessionState?, idToken: String
    ) async throws(GatewayCallFailure) -> Outcome {
        for attempt in 0..<2 {
            if state == nil { state = try await initialize(route: route, idToken: idToken) }
            do {
                return try await post(route: route, method: method, params: params, state: state, idToken: idToken)
            } catch .sessionExpired where attempt == 0 {
                state = nil
            }
        }
        throw .failed(code: "mcp_session_lost", message: "the MCP server keeps forgetting the session")
    }

    /// `tools/list`, every page (at most 20), and the servers the gateway's `/mcp` could not
    /// list (its `_meta["switchboard/unavailable"]`: connection, code, `interaction_uri`).
    func listTools(route: String, state: inout MCPSessionState?, idToken: String) async throws(GatewayCallFailure) -> (tools: [JSONValue], unavailable: [JSONValue]) {
        var tools: [JSONValue] = []
        var unavailable: [JSONValue] = []
        var cursor: String?
        for _ in 0..<20 {
            let params: JSONValue = cursor.map { ["cursor": .string($0)] } ?? [:]
            let outcome = try await request(route: route, method: "tools/list", params: params, state: &state, idToken: idToken)
            tools += outcome.result["tools"]?.array ?? []
            unavailable += outcome.result["_meta"]?["switchboard/unavailable"]?.array ?? []
            guard let next = outcome.result["nextCursor"]?.string, !next.isEmpty else { break }
            cursor = next
        }
        return (tools, unavailable)
    }

    private func initialize(route: String, idToken: String) async throws(GatewayCallFailure) -> MCPSessionState {
        let params: JSONValue = ["protocolVersion": .string(Self.protocolVersion), "capabilities": [:], "clientInfo": Self.clientInfo]
        let answer = try await exchange(route: route, message: Self.message(id: 0, method: "initialize", params: params), state: nil, idToken: idToken)
        let result = try Self.response(to: 0, in: answer)
        let version = result["protocolVersion"]?.string ?? Self.protocolVersion
        let state = MCPSessionState(sessionID: answer.headers.first(name: "mcp-session-id"), protocolVersion: version)
        let initialized: JSONValue = ["jsonrpc": "2.0", "method": "notifications/initialized"]
        let ack = try await exchange(route: route, message: initialized, state: state, idToken: idToken)
        guard ack.status == 202 || ack.status == 200 else { throw GatewayClient.failure(from: ack) }
        return state
    }

    private func post(route: String, method: String, params: JSONValue, state: MCPSessionState?, idToken: String) async throws(GatewayCallFailure) -> Outcome {
        let id = Int.random(in: 1...999_999_999)
        let answer = try await exchange(route: route, message: Self.message(id: id, method: method, params: params), state: state, idToken: idToken)
        if answer.status == 404, state?.sessionID != nil, answer.json?["error"]?.string == nil { throw .sessionExpired }
        return Outcome(result: try Self.response(to: id, in: answer), stepUpScopes: answer.stepUpScopes)
    }

    private func exchange(route: String, message: JSONValue, state: MCPSessionState?, idToken: String) async throws(GatewayCallFailure) -> GatewayAnswer {
        var headers = [("Accept", "application/json, text/event-stream")]
        if let state {
            headers.append(("MCP-Protocol-Version", state.protocolVersion))
            if let session = state.sessionID { headers.append(("Mcp-Session-Id", session)) }
        }
        return try await gateway.send(.POST, route, idToken: idToken, headers: headers, body: ByteBuffer(bytes: message.encoded()))
    }

    static func message(id: Int, method: String, params: JSONValue) -> JSONValue {
        ["jsonrpc": "2.0", "id": .number(Double(id)), "method": .string(method), "params": params]
    }

    /// The JSON-RPC response with `id`, from a JSON body or the events of an SSE body.
    static func response(to id: Int, in answer: GatewayAnswer) throws(GatewayCallFailure) -> JSONValue {
        guard answer.status == 200 else { throw GatewayClient.failure(from: answer) }
        var messages: [JSONValue] = []
        if answer.isEventStream {
            var parser = SSEParser()
            messages = parser.feed(answer.body.readableBytesView).compactMap { JSONValue.parse(Array($0.utf8)) }
        } else if let json = answer.json {
            messages = json.array ?? [json]
        }
        guard let reply = messages.first(where: { $0["id"]?.integer == id && ($0["result"] != nil || $0["error"] != nil) }) else {
            throw .failed(code: "mcp_no_response", message: "the MCP server's answer holds no response to the request")
        }
        if let error = reply["error"] {
            if error["data"]?["error"]?.string != nil { throw GatewayClient.failure(from: answer) }
            throw .failed(code: "mcp_error", message: error["message"]?.string ?? "the MCP server answered an error")
        }
        return reply["result"] ?? .null
    }
}
