public import AsyncHTTPClient
import Foundation
public import NIOCore
public import NIOHTTP1
import OAuthCore

/// One HTTP answer, read whole. Suites add their own views of the body in extensions (MCP
/// results, SSE events, typed JSON).
public struct HTTPAnswer: Sendable, CustomStringConvertible {
    public var status: Int
    public var headers: HTTPHeaders
    /// The body as received.
    public var buffer: ByteBuffer

    public init(status: Int, headers: HTTPHeaders, buffer: ByteBuffer) {
        self.status = status
        self.headers = headers
        self.buffer = buffer
    }

    /// The body as text (UTF-8).
    public var body: String { String(buffer: buffer) }
    /// The first value of header `name` (any case).
    public func header(_ name: String) -> String? { headers.first(name: name) }
    /// `Content-Type`, lowercased ("" when absent).
    public var contentType: String { header("Content-Type")?.lowercased() ?? "" }
    /// The body as a JSON object (empty when it is not one).
    public var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any] ?? [:] }
    public var description: String { "HTTP \(status) \(header("Content-Type") ?? "-"): \(body.prefix(800))" }
}

/// The HTTP client side of the tests: one request, answer read whole.
public enum TestHTTP {
    /// Follows no redirect: the tests look at every 302 themselves.
    public static let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: .init(redirectConfiguration: .disallow))

    /// Sends `method url` with `headers` and a text `body`; `client` defaults to ``client``.
    public static func send(
        _ method: HTTPMethod = .GET, _ url: String, headers: [(String, String)] = [], body: String? = nil, client: HTTPClient = client,
        timeout: Duration = .seconds(30)
    ) async throws -> HTTPAnswer {
        try await send(method, url, headers: headers, content: body.map { .bytes(ByteBuffer(string: $0)) }, client: client, timeout: timeout)
    }

    /// Sends `method url` with `headers` and any request body (bytes or a stream).
    public static func send(
        _ method: HTTPMethod = .GET, _ url: String, headers: [(String, String)] = [], content: HTTPClientRequest.Body?, client: HTTPClient = client,
        timeout: Duration = .seconds(30)
    ) async throws -> HTTPAnswer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let content { request.body = content }
        let response = try await client.execute(request, timeout: timeAmount(timeout))
        let buffer = try await response.body.collect(upTo: 64 << 20)
        return HTTPAnswer(status: Int(response.status.code), headers: response.headers, buffer: buffer)
    }

    /// A form POST (`application/x-www-form-urlencoded`).
    public static func postForm(
        _ url: String, _ fields: [(String, String)], headers: [(String, String)] = [], client: HTTPClient = client, timeout: Duration = .seconds(30)
    ) async throws -> HTTPAnswer {
        try await send(.POST, url, headers: [("Content-Type", "application/x-www-form-urlencoded")] + headers, body: form(fields), client: client, timeout: timeout)
    }

    /// `application/x-www-form-urlencoded` (as the services under test encode it).
    public static func form(_ fields: [(String, String)]) -> String { TokenEndpointClient.encode(fields) }

    public static func timeAmount(_ d: Duration) -> TimeAmount {
        .nanoseconds(d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000)
    }

    // MARK: parsing

    /// The bytes of a hex string (two digits a byte).
    public static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            out.append(UInt8(hex[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    /// The query items of `url`, the last of each name winning.
    public static func query(_ url: String) -> [String: String] {
        var out: [String: String] = [:]
        for item in URLComponents(string: url)?.queryItems ?? [] { out[item.name] = item.value ?? "" }
        return out
    }

    /// `url` without its query.
    public static func withoutQuery(_ url: String) -> String {
        String(url.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
    }

    /// `scheme://host[:port]` of `url`.
    public static func origin(_ url: String) -> String {
        guard let u = URLComponents(string: url), let scheme = u.scheme, let host = u.host else { return url }
        return "\(scheme)://\(host)" + (u.port.map { ":\($0)" } ?? "")
    }

    /// The hidden inputs of an HTML form, in order.
    public static func hiddenFields(_ html: String) -> [(String, String)] {
        html.matches(of: /<input type="hidden" name="([^"]*)" value="([^"]*)">/).map { (unescapeHTML(String($0.1)), unescapeHTML(String($0.2))) }
    }

    /// The `action` of the first POST form.
    public static func formAction(_ html: String) -> String? {
        html.firstMatch(of: /<form method="post" action="([^"]*)"/).map { unescapeHTML(String($0.1)) }
    }

    public static func unescapeHTML(_ s: String) -> String {
        s.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
    }
}

/// A compact JWT's header and claims, decoded without verification (to look at them).
public struct DecodedJWT {
    public var header: [String: Any]
    public var claims: [String: Any]

    public init(_ token: String) throws {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let h = Base64URL.decode(parts[0]), let p = Base64URL.decode(parts[1]),
              let header = try JSONSerialization.jsonObject(with: h) as? [String: Any],
              let claims = try JSONSerialization.jsonObject(with: p) as? [String: Any]
        else { throw NotAJWT(description: "not a compact JWT: \(token.prefix(40))") }
        self.header = header
        self.claims = claims
    }

    /// An integer claim.
    public func int(_ name: String) -> Int? { (claims[name] as? NSNumber)?.intValue }

    /// `scp` (array) or `scope` (space separated).
    public var scopes: [String] {
        if let scp = claims["scp"] as? [String] { return scp }
        return (claims["scope"] as? String)?.split(separator: " ").map(String.init) ?? []
    }

    public struct NotAJWT: Error, CustomStringConvertible {
        public var description: String
    }
}
