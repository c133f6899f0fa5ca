import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardJSON
import Synchronization

/// One HTTP answer, read whole.
struct Answer: Sendable, CustomStringConvertible {
    var status: Int
    var headers: HTTPHeaders
    var body: String

    func header(_ name: String) -> String? { headers.first(name: name) }
    /// The body as JSON (nil when it is not JSON).
    var json: JSONValue? { JSONValue.parse(Array(body.utf8)) }
    /// The `Set-Cookie` of cookie `name` (the last one when there are several).
    func setCookie(_ name: String) -> SetCookie? {
        headers["Set-Cookie"].compactMap(SetCookie.init).last { $0.name == name }
    }

    var description: String { "HTTP \(status) \(header("Content-Type") ?? "-"): \(body.prefix(600))" }
}

/// A `Set-Cookie` value taken apart.
struct SetCookie: Sendable, Equatable {
    var name: String
    var value: String
    /// Attribute names lowercased; values as sent (nil for flags such as `HttpOnly`).
    var attributes: [String: String?]

    init?(_ header: String) {
        let parts = header.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let first = parts.first, let eq = first.firstIndex(of: "=") else { return nil }
        name = String(first[..<eq])
        value = String(first[first.index(after: eq)...])
        var attributes: [String: String?] = [:]
        for part in parts.dropFirst() where !part.isEmpty {
            if let eq = part.firstIndex(of: "=") {
                attributes[part[..<eq].lowercased()] = String(part[part.index(after: eq)...])
            } else {
                attributes[part.lowercased()] = .some(nil)
            }
        }
        self.attributes = attributes
    }

    func has(_ attribute: String) -> Bool { attributes[attribute.lowercased()] != nil }
    func attribute(_ name: String) -> String? { attributes[name.lowercased()] ?? nil }
    var maxAge: Int? { attribute("Max-Age").flatMap { Int($0) } }
    /// What a browser does with it: an empty value or `Max-Age=0` deletes the cookie.
    var deletes: Bool { value.isEmpty || maxAge == 0 }
}

/// A user agent without JavaScript: one cookie jar (cookies do not separate ports, and every
/// service here runs on 127.0.0.1), redirects never followed on its own. `rewrites` stands for
/// a TLS-terminating reverse proxy: a URL starting with a public base is sent to the real one.
final class Browser: Sendable {
    /// Follows no redirect: the tests look at every 302.
    static let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: .init(redirectConfiguration: .disallow))

    private let jar = Mutex<[String: String]>([:])
    private let rewrites: [(from: String, to: String)]

    init(rewrites: [(from: String, to: String)] = []) {
        self.rewrites = rewrites
    }

    /// The value this browser holds for cookie `name`.
    func cookie(_ name: String) -> String? { jar.withLock { $0[name] } }
    /// Puts a cookie in the jar as if a server had set it (a stale or forged cookie).
    func setCookie(_ name: String, _ value: String?) { jar.withLock { $0[name] = value } }

    /// Sends a request with the jar's cookies (unless `cookies` is false) and keeps what the
    /// answer sets.
    func send(
        _ method: HTTPMethod, _ url: String, headers: [(String, String)] = [], body: String? = nil, cookies: Bool = true
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: target(url))
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if cookies {
            let header = jar.withLock { $0.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") }
            if !header.isEmpty { request.headers.add(name: "Cookie", value: header) }
        }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await Self.client.execute(request, timeout: .seconds(60))
        let data = try await response.body.collect(upTo: 16 << 20)
        let answer = Answer(status: Int(response.status.code), headers: response.headers, body: String(buffer: data))
        jar.withLock { jar in
            for cookie in answer.headers["Set-Cookie"].compactMap(SetCookie.init) {
                jar[cookie.name] = cookie.deletes ? nil : cookie.value
            }
        }
        return answer
    }

    func get(_ url: String, headers: [(String, String)] = []) async throws -> Answer {
        try await send(.GET, url, headers: headers)
    }

    /// A form POST (`application/x-www-form-urlencoded`).
    func postForm(_ url: String, _ fields: [(String, String)], headers: [(String, String)] = []) async throws -> Answer {
        try await send(.POST, url, headers: [("Content-Type", "application/x-www-form-urlencoded")] + headers, body: Form.encode(fields))
    }

    /// Where `url` really goes (through `rewrites`).
    func target(_ url: String) -> String {
        for rewrite in rewrites where url.hasPrefix(rewrite.from) { return rewrite.to + url.dropFirst(rewrite.from.count) }
        return url
    }
}

/// Forms, query strings and the IdP's HTML.
enum Form {
    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    static func encode(_ fields: [(String, String)]) -> String {
        fields.map { escape($0.0) + "=" + escape($0.1) }.joined(separator: "&")
    }

    static func escape(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: unreserved) ?? s }

    /// The query items of `url`, the last of each name winning.
    static func query(_ url: String) -> [String: String] {
        var out: [String: String] = [:]
        for item in URLComponents(string: url)?.queryItems ?? [] { out[item.name] = item.value ?? "" }
        return out
    }

    /// `scheme://host[:port]` of `url`.
    static func origin(_ url: String) -> String {
        guard let u = URLComponents(string: url), let scheme = u.scheme, let host = u.host else { return url }
        return "\(scheme)://\(host)" + (u.port.map { ":\($0)" } ?? "")
    }

    /// `url` without its query.
    static func withoutQuery(_ url: String) -> String {
        String(url.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
    }

    /// The hidden inputs of an HTML form, in order.
    static func hiddenFields(_ html: String) -> [(String, String)] {
        html.matches(of: /<input type="hidden" name="([^"]*)" value="([^"]*)">/).map { (unescapeHTML(String($0.1)), unescapeHTML(String($0.2))) }
    }

    /// The `action` of the first POST form.
    static func formAction(_ html: String) -> String? {
        html.firstMatch(of: /<form method="post" action="([^"]*)"/).map { unescapeHTML(String($0.1)) }
    }

    static func unescapeHTML(_ s: String) -> String {
        s.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
    }
}

/// A failed step on the way to the state a test examines.
struct StepFailed: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
