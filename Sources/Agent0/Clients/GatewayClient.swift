import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardJSON

/// Why a call through the gateway did not give an answer to use, in the tool loop's terms.
enum GatewayCallFailure: Error, Sendable, Equatable {
    /// The user must consent first (OAuth STS brokered consent): open `uri`, then retry.
    case interactionRequired(uri: String, message: String)
    /// A gateway error answer (its stable `error` code and sentence) or a transport failure.
    case failed(code: String, message: String)
    /// The MCP server no longer knows the session (404): initialize again.
    case sessionExpired
}

/// One answer from the gateway, read whole (bounded).
struct GatewayAnswer: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: ByteBuffer

    var json: JSONValue? { JSONValue.parse(body.readableBytesView) }
    var isEventStream: Bool { headers.first(name: "content-type")?.lowercased().hasPrefix("text/event-stream") == true }
    /// The scopes a step-up at the gateway added for this call (its `Switchboard-Step-Up` header).
    var stepUpScopes: [String]? {
        guard let value = headers.first(name: "switchboard-step-up"), !value.isEmpty else { return nil }
        return value.split(separator: " ").map(String.init)
    }
}

/// agent0's only way out: the gateway, always with the signed-in user's ID token. It never
/// reaches an upstream directly and never sees an upstream credential.
struct GatewayClient: Sendable {
    let baseURL: String
    let httpClient: HTTPClient
    let timeout: Duration
    /// Largest answer read (a tool result, the status document).
    static let maxAnswer = 4 << 20

    /// A connection as `GET /api/connections` lists it.
    struct Listed: Sendable, Equatable {
        var name: String
        var kind: String
        var title: String
        var route: String?
        var enabled: Bool
    }

    func send(_ method: HTTPMethod, _ path: String, idToken: String, headers: [(String, String)] = [], body: ByteBuffer? = nil) async throws(GatewayCallFailure) -> GatewayAnswer {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer " + idToken)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(body)
        }
        do {
            let response = try await httpClient.execute(request, timeout: .nanoseconds(timeout.nanosecondsClamped))
            let data = try await response.body.collect(upTo: Self.maxAnswer)
            return GatewayAnswer(status: Int(response.status.code), headers: response.headers, body: data)
        } catch let error as HTTPClientError where error == .deadlineExceeded {
            throw .failed(code: "gateway_timeout", message: "the gateway did not answer in time")
        } catch let error as NIOTooManyBytesError {
            _ = error
            throw .failed(code: "answer_too_large", message: "the answer is larger than \(Self.maxAnswer) bytes")
        } catch {
            throw .failed(code: "gateway_unreachable", message: "the gateway at \(baseURL) could not be reached")
        }
    }

    /// The registry's connections of one kind, as the gateway serves them now.
    func connections(kind: String, idToken: String) async throws(GatewayCallFailure) -> [Listed] {
        let answer = try await send(.GET, "/api/connections?kind=" + kind, idToken: idToken)
        guard answer.status == 200, let items = answer.json?["connections"]?.array else { throw Self.failure(from: answer) }
        return items.compactMap { item in
            guard let name = item["name"]?.string, let kind = item["kind"]?.string else { return nil }
            return Listed(name: name, kind: kind, title: item["title"]?.string ?? name, route: item["route"]?.string, enabled: item["enabled"]?.bool ?? true)
        }
    }

    /// What an error answer says: the gateway's JSON (`{"error", "message", "interaction_uri"}`,
    /// or a JSON-RPC error whose `data` carries those), else the status line.
    static func failure(from answer: GatewayAnswer) -> GatewayCallFailure {
        let json = answer.json
        let fields: JSONValue? = json?["error"]?.object != nil ? json?["error"]?["data"] : json
        let code = fields?["error"]?.string
        let message = json?["message"]?.string ?? json?["error"]?["message"]?.string ?? "the gateway answered \(answer.status)"
        if code == "interaction_required", let uri = fields?["interaction_uri"]?.string {
            return .interactionRequired(uri: uri, message: message)
        }
        return .failed(code: code ?? "http_\(answer.status)", message: message)
    }
}

extension Duration {
    /// Nanoseconds for NIO's TimeAmount, saturating.
    var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        if seconds >= Int64.max / 1_000_000_000 - 1 { return Int64.max }
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
