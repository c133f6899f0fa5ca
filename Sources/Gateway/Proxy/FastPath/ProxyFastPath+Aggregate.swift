import HTTPTypes
import NIOCore
import NIOHTTP1
import PluginAPI
import SwitchboardJSON

/// The event-loop driver's part in the `/mcp` endpoint: a `tools/call` in an open session, for
/// a caller whose token is verified, to a connection whose credential and upstream session
/// are at hand, goes out on the event loop like a warm call to `/mcp/{name}` — the name
/// rewritten, the upstream's session in place of the client's, the client's id kept (so the
/// answer is the client's as it stands, with the gateway's session id put back). Whatever this
/// cannot do (another method, a first call, an answer that is not a plain 200) goes to
/// ``AggregateEndpoint/handOver(_:)`` whole, which does it as it does for Hummingbird's requests.
///
/// Why: through Hummingbird and the async driver, a call via `/mcp` ran at 0.56–0.63× of the
/// same call via `/mcp/{name}` (bench/run's `/mcp` cells).
extension ProxyFastPath {
    /// A `POST /mcp` this driver reads whole before deciding (its body names the tool).
    final class AggregateCall: @unchecked Sendable {
        let head: HTTPRequestHead
        /// The generation the request was taken under: kept to its end, whichever way it goes.
        let registry: Registry
        var body: ByteBuffer?

        init(head: HTTPRequestHead, registry: Registry) {
            self.head = head
            self.registry = registry
        }
    }

    /// A request this driver reads whole for the `/mcp` endpoint, or nil (Hummingbird's).
    func takeAggregate(_ head: HTTPRequestHead) -> AggregateCall? {
        guard head.version == .http1_1, head.isKeepAlive, head.method == .POST, head.uri == "/mcp" else { return nil }
        let headers = head.headers
        let registry = proxy.holder.registry
        var bytes = 0
        for (name, value) in headers { bytes += name.utf8.count + value.utf8.count }
        guard (try? Admission.checkHeaders(count: headers.count, bytes: bytes, settings: registry.settings)) != nil,
              headers.contains(name: "authorization"), headers.contains(name: "mcp-session-id"),
              !headers.contains(name: "transfer-encoding"), !headers.contains(name: "expect"), !headers.contains(name: "upgrade"),
              let length = headers.first(name: "content-length").flatMap(Int.init), length > 0,
              Admission.keepsBody(contentLength: length, settings: registry.settings)
        else { return nil }
        return AggregateCall(head: head, registry: registry)
    }

    /// The call as a warm request to its connection, or nil: the endpoint's (handed over).
    func routeAggregate(_ call: AggregateCall) -> Request? {
        let registry = call.registry
        let headers = call.head.headers
        guard let authorization = Admission.authorization(headers), let caller = registry.authenticator.cachedCaller(authorization),
              let sessionID = headers.first(name: "mcp-session-id"),
              let session = aggregate.sessions.find(sessionID, caller: caller, virtualServer: nil),
              headers.first(name: "mcp-protocol-version").map({ $0 == session.protocolVersion }) ?? true,
              let body = call.body
        else { return nil }
        // Only the members the route needs are read; the rest of the client's bytes go out as
        // they came, with the name rewritten in place.
        let bytes = Array(body.readableBytesView)
        guard let peek = JSONRPCPeek(bytes), !peek.ambiguous, peek.jsonrpc == "2.0", peek.method == "tools/call",
              let id = peek.id, id != .null, let name = peek.name, let nameRange = peek.nameRange
        else { return nil }
        let aggregator = Aggregator(proxy: proxy, registry: registry, caller: caller, session: session, filter: nil)
        guard let (connection, tool) = aggregator.route(name), let origin = connection.upstreamOrigin, origin.isPlainHTTP,
              let upstream = session.upstream.current(connection.name),
              let credential = CredentialResolver.cached(for: connection, caller: caller),
              // A governed connection's calls go through the endpoint, whose pipeline counts and
              // judges each once (a hand-over from here would count it again).
              registry.policy(for: connection) == nil, connection.plan.rateLimits.isEmpty
        else { return nil }
        var forwarded = ByteBuffer()
        forwarded.reserveCapacity(bytes.count)
        forwarded.writeBytes(bytes[..<nameRange.lowerBound])
        forwarded.writeBytes(JSONValue.string(tool).encoded())
        forwarded.writeBytes(bytes[nameRange.upperBound...])
        guard (try? Admission.checkBody(contentLength: forwarded.readableBytes, connection: connection)) != nil else { return nil }
        // One pass over the client's headers (removing and replacing by name scanned them three times).
        var fields: [(String, String)] = []
        fields.reserveCapacity(headers.count + 1)
        for (name, value) in headers
        where !HeaderFilter.equalsIgnoringCase(name, "mcp-session-id") && !HeaderFilter.equalsIgnoringCase(name, "mcp-protocol-version") {
            fields.append((name, value))
        }
        fields.append(("MCP-Protocol-Version", upstream.protocolVersion))
        if let upstreamID = upstream.id { fields.append(("Mcp-Session-Id", upstreamID)) }
        let upstreamHeaders = HTTPHeaders(fields)
        let route = connection.descriptor.route ?? ("/mcp/" + connection.name)
        let request = Request(
            registry: registry, target: ProxyTarget(prefix: .mcp, segment: Substring(route.dropFirst("/mcp/".count)), remainder: "", query: nil),
            connection: connection, method: .post, head: HTTPRequestHead(version: .http1_1, method: .POST, uri: route, headers: upstreamHeaders),
            authorization: authorization, origin: origin)
        request.caller = caller
        request.credential = credential
        request.body = forwarded
        request.aggregate = (call, session.id)
        return request
    }
}

