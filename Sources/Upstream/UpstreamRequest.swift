public import NIOCore
public import NIOHTTP1

/// One request to an upstream, as the proxy builds it: the parsed origin, the method, path
/// and headers, and the body (none, a kept buffer, or the caller's stream).
public struct UpstreamRequest: Sendable {
    public enum Body: Sendable {
        case none
        case bytes(ByteBuffer)
        /// Streamed once, as it arrives; `length` nil means chunked.
        case stream(any AsyncSequence<ByteBuffer, any Error> & Sendable, length: Int?)
    }

    public var origin: UpstreamOrigin
    public var method: HTTPMethod
    /// Path and query, already encoded (`/mcp?x=1`).
    public var target: String
    public var headers: HTTPHeaders
    public var body: Body

    public init(origin: UpstreamOrigin, method: HTTPMethod, target: String, headers: HTTPHeaders, body: Body) {
        self.origin = origin
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
    }

    /// Replayable on a fresh connection (nothing read from the caller is lost).
    public var isReplayable: Bool {
        if case .stream = body { return false }
        return true
    }

    public var url: String { origin.baseURL + target }
}

/// Scheme, host and port of an upstream, parsed once per connection.
public struct UpstreamOrigin: Sendable, Hashable {
    public var scheme: String
    public var host: String
    public var port: Int
    /// The upstream's own path prefix (`/mcp` of `http://h:5002/mcp`), without a trailing `/`.
    public var basePath: String

    public var isPlainHTTP: Bool { scheme == "http" }
    /// `Host` header value: the port only when it is not the scheme's default (computed once:
    /// every request sends it).
    public let hostHeader: String
    public var baseURL: String { "\(scheme)://\(hostHeader)" }

    /// Parses `http(s)://host[:port][/path]`; nil for anything else.
    public init?(_ url: String) {
        let lower = url.lowercased()
        let scheme: String
        if lower.hasPrefix("http://") { scheme = "http" } else if lower.hasPrefix("https://") { scheme = "https" } else { return nil }
        let rest = url.dropFirst(scheme.count + 3)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        var path = String(rest[slash...])
        if path.hasSuffix("/") { path.removeLast() }
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var host = Substring(authority)
        var port = scheme == "https" ? 443 : 80
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if after.hasPrefix(":") { guard let p = Int(after.dropFirst()) else { return nil }; port = p }
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]) else { return nil }
            port = p
            host = host[..<colon]
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
        self.scheme = scheme
        self.host = String(host)
        self.port = port
        self.basePath = path
        let bracketed = host.contains(":") ? "[\(host)]" : String(host)
        self.hostHeader = port == (scheme == "https" ? 443 : 80) ? bracketed : "\(bracketed):\(port)"
    }
}
