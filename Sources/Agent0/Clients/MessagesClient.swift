import AsyncHTTPClient
import Foundation
import NIOCore
import SwitchboardJSON

/// The model, reached through the Anthropic Messages API (`POST {llm}/v1/messages`) at the
/// LLM adapter: the offline planner by default, Anthropic or Bedrock by the adapter's config.
struct MessagesClient: Sendable {
    struct Failure: Error, Sendable {
        var message: String
    }

    let baseURL: String
    let apiKey: String?
    let model: String
    let httpClient: HTTPClient
    let timeout: Duration
    static let maxTokens = 2048

    /// One model call; the answer's `content` blocks and `stop_reason`.
    func create(system: String, messages: [JSONValue], tools: [JSONValue]) async throws(Failure) -> JSONValue {
        var body: [String: JSONValue] = [
            "model": .string(model), "max_tokens": .number(Double(Self.maxTokens)), "system": .string(system), "messages": .array(messages),
        ]
        if !tools.isEmpty { body["tools"] = .array(tools) }
        var request = HTTPClientRequest(url: baseURL + "/v1/messages")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "anthropic-version", value: "2023-06-01")
        if let apiKey { request.headers.add(name: "x-api-key", value: apiKey) }
        request.body = .bytes(ByteBuffer(bytes: JSONValue.object(body).encoded()))
        let status: Int
        let data: ByteBuffer
        do {
            let response = try await httpClient.execute(request, timeout: .nanoseconds(timeout.nanosecondsClamped))
            status = Int(response.status.code)
            data = try await response.body.collect(upTo: 8 << 20)
        } catch {
            throw Failure(message: "the language model at \(baseURL) could not be reached")
        }
        guard let json = JSONValue.parse(data.readableBytesView) else { throw Failure(message: "the language model answered \(status) without JSON") }
        guard status == 200, json["type"]?.string == "message", json["content"]?.array != nil else {
            let why = json["error"]?["message"]?.string ?? "status \(status)"
            throw Failure(message: "the language model refused the request: \(why)")
        }
        return json
    }
}
