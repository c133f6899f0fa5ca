import Foundation
import NIOHTTP1
import SwitchboardJSON
import SwitchboardTesting
import Synchronization

/// One HTTP answer (``HTTPAnswer``), with agent0's views of it.
typealias Answer = HTTPAnswer

extension HTTPAnswer {
    /// The body as JSON (nil when it is not JSON).
    var jsonValue: JSONValue? { JSONValue.parse(Array(body.utf8)) }
    /// The `Set-Cookie` of cookie `name` (the last one when there are several).
    func setCookie(_ name: String) -> SetCookie? {
        headers["Set-Cookie"].compactMap(SetCookie.init).last { $0.name == name }
    }
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
        var headers = headers
        if cookies {
            let header = jar.withLock { $0.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") }
            if !header.isEmpty { headers.append(("Cookie", header)) }
        }
        let answer = try await TestHTTP.send(method, target(url), headers: headers, body: body, timeout: .seconds(60))
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
        try await send(.POST, url, headers: [("Content-Type", "application/x-www-form-urlencoded")] + headers, body: TestHTTP.form(fields))
    }

    /// Where `url` really goes (through `rewrites`).
    func target(_ url: String) -> String {
        for rewrite in rewrites where url.hasPrefix(rewrite.from) { return rewrite.to + url.dropFirst(rewrite.from.count) }
        return url
    }
}
