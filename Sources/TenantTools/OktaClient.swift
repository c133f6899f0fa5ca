public import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardJSON

/// The Okta Management API over HTTPS (or the development IdP's subset over loopback): SSWS
/// token, JSON in and out, Okta's error body read into ``OktaAPIError``, and the asynchronous
/// operations of AI agents (202 + `Location`, polled with a bounded wait).
public struct OktaClient: Sendable {
    public let org: String
    let token: String
    let http: HTTPClient
    var timeout: TimeAmount = .seconds(20)
    /// Polling of an asynchronous operation: first after `pollInterval`, at most `pollLimit`.
    var pollInterval: Duration = .milliseconds(500)
    var pollLimit: Duration = .seconds(60)

    public init(org: String, token: String, httpClient: HTTPClient) {
        self.org = org.hasSuffix("/") ? String(org.dropLast()) : org
        self.token = token
        self.http = httpClient
    }

    struct Answer {
        var status: Int
        var body: JSONValue?
        var location: String?

        /// A list answer's items: Okta's core API answers a JSON array, the workload-principals
        /// API (AI agents, their keys and connections) `{data: […], _links}`.
        var items: [JSONValue] { body?.array ?? body?["data"]?.array ?? [] }
    }

    /// One call; a non-2xx answer throws ``OktaAPIError`` naming `what`.
    @discardableResult
    func call(_ method: HTTPMethod, _ path: String, body: JSONValue? = nil, what: String) async throws -> Answer {
        var request = HTTPClientRequest(url: path.hasPrefix("http") ? path : org + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "SSWS " + token)
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body.encoded()))
        }
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: timeout)
        } catch {
            throw OktaAPIError(what: what, status: 0, code: nil, summary: "\(org) is not reachable: \(error)", causes: [])
        }
        let bytes = try await response.body.collect(upTo: 4 << 20)
        let json = bytes.readableBytes == 0 ? nil : JSONValue.parse(bytes.readableBytesView)
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else {
            throw OktaAPIError(
                what: what, status: status, code: json?["errorCode"]?.string, summary: json?["errorSummary"]?.string ?? "HTTP \(status)",
                causes: json?["errorCauses"]?.array?.compactMap { $0["errorSummary"]?.string } ?? [])
        }
        return Answer(status: status, body: json, location: response.headers.first(name: "location"))
    }

    /// The object, or nil when the API answers 404.
    func find(_ path: String, what: String) async throws -> JSONValue? {
        do {
            return try await call(.GET, path, what: what).body
        } catch let error as OktaAPIError where error.status == 404 {
            return nil
        }
    }

    /// A call answered 202 + `Location`: polls the operation until COMPLETED (FAILED or the
    /// time limit throws). Returns the operation.
    func operation(_ method: HTTPMethod, _ path: String, body: JSONValue? = nil, what: String) async throws -> JSONValue {
        let answer = try await call(method, path, body: body, what: what)
        guard answer.status == 202, let location = answer.location else {
            throw OktaAPIError(what: what, status: answer.status, code: nil, summary: "expected 202 Accepted with a Location header", causes: [])
        }
        let deadline = ContinuousClock.now + pollLimit
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: pollInterval)
            let op = try await call(.GET, location, what: what + " (operation)").body
            switch op?["status"]?.string {
            case "COMPLETED": return op ?? .null
            case "FAILED":
                throw OktaAPIError(what: what, status: 200, code: op?["errorDetails"]?["code"]?.string,
                                   summary: op?["errorDetails"]?["message"]?.string ?? "the operation failed", causes: [])
            default: continue
            }
        }
        throw OktaAPIError(what: what, status: 0, code: nil, summary: "the operation did not complete within \(pollLimit)", causes: [])
    }
}

/// An Okta API call that failed: which object, the status, and Okta's `errorCode`,
/// `errorSummary` and `errorCauses`.
public struct OktaAPIError: Error, CustomStringConvertible {
    public var what: String
    public var status: Int
    public var code: String?
    public var summary: String
    public var causes: [String]

    public var description: String {
        var text = "\(what): " + (status > 0 ? "HTTP \(status) " : "") + (code.map { "\($0) " } ?? "") + summary
        if !causes.isEmpty { text += " (" + causes.joined(separator: "; ") + ")" }
        return text
    }
}

/// An HTTP client for one command, shut down when it is done (the CLI holds no client).
public enum TenantHTTP {
    public static func with<R>(_ body: (HTTPClient) async throws -> R) async rethrows -> R {
        // One attempt per connection: a command checking or setting up a tenant says at once
        // that a host refuses connections (the default retries until the request's timeout).
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(5)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let result = try await body(http)
            try? await http.shutdown()
            return result
        } catch {
            try? await http.shutdown()
            throw error
        }
    }
}
