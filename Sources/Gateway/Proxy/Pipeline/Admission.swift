import HTTPTypes
import NIOHTTP1

/// The first step of every proxied call, for both drivers: which connection serves it, and
/// whether its head may pass (method, header limits, declared body size). Each rule is here
/// once; the event-loop driver asks the same questions and leaves a refused request to the
/// async driver, which words the refusal.
enum Admission {
    /// The enabled connection `target` names in `registry` (the generation the call keeps).
    static func route(_ target: ProxyTarget, in registry: Registry, method: HTTPRequest.Method) throws(GatewayError) -> Connection {
        let table = target.prefix == .mcp ? registry.mcpRoutes : registry.restRoutes
        guard let connection = table[target.segment] else {
            throw GatewayError.unknownConnection((target.prefix == .mcp ? "/mcp/" : "/rest/") + target.segment)
        }
        guard connection.enabled else { throw GatewayError.disabled(connection.name, reason: connection.plan.disabledReason) }
        if target.prefix == .mcp {
            guard target.remainder.isEmpty || target.remainder == "/" else {
                throw GatewayError(code: "not_found", status: .notFound, message: "an MCP route has no sub-paths", connection: connection.name)
            }
            guard method == .post || method == .get || method == .delete else {
                throw GatewayError.methodNotAllowed(method, allowed: "GET, POST, DELETE", connection: connection.name)
            }
        }
        return connection
    }

    /// The caller's `Authorization` value. Several `Authorization` fields are joined (as RFC
    /// 9110 §5.3 combines fields), which no token check accepts: a request never verifies on
    /// its first token while another reader of the same request might take the second.
    static func authorization(_ headers: HTTPHeaders) -> String? {
        // One pass, no array (this runs on every call).
        var found: String?
        for (name, value) in headers where name.utf8.count == 13 && HeaderFilter.equalsIgnoringCase(name, "authorization") {
            found = found.map { $0 + ", " + value } ?? value
        }
        return found
    }

    /// Header limits: `count` fields whose names and values add up to `bytes`.
    static func checkHeaders(count: Int, bytes: Int, settings: GatewaySettings) throws(GatewayError) {
        if count > settings.maxHeaderCount {
            throw GatewayError.headersTooLarge("more than \(settings.maxHeaderCount) header fields")
        }
        if bytes > settings.maxHeaderBytes {
            throw GatewayError.headersTooLarge("request headers exceed \(settings.maxHeaderBytes) bytes")
        }
    }

    /// A declared body larger than the connection takes is refused before anything is read.
    static func checkBody(contentLength: Int?, connection: Connection) throws(GatewayError) {
        if let contentLength, contentLength > connection.maxRequestBody {
            throw GatewayError.payloadTooLarge(limit: connection.maxRequestBody, connection: connection.name)
        }
    }

    /// Whether a request body of `contentLength` bytes is kept in memory: it can then be sent
    /// again (a refresh or step-up replays the call) and goes upstream as one buffer.
    static func keepsBody(contentLength: Int, settings: GatewaySettings) -> Bool {
        contentLength > 0 && contentLength <= settings.maxReplayBody
    }
}
