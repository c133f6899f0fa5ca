import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import PluginAPI

/// The request pipeline of `/mcp/{name}` and `/rest/{name}/…`:
/// route → limits → inbound identity → plugin credential → upstream call → streamed answer.
struct ProxyHandler: Sendable {
    let holder: RegistryHolder
    let httpClient: HTTPClient
    let logger: Logger
    let clock: any GatewayClock

    func handle(_ request: Request, target: ProxyTarget) async -> Response {
        let started = ContinuousClock.now
        let registry = holder.registry  // this request keeps this generation to the end
        let connection: Connection
        do {
            connection = try route(target, in: registry, method: request.method)
        } catch {
            return error.response()
        }
        do {
            return try await forward(request, target: target, connection: connection, registry: registry, started: started)
        } catch {
            // Only failures of the connection itself (upstream, credential) count against it;
            // a caller's bad token or oversized body says nothing about the connection.
            let isUpstream = error.code.hasPrefix("upstream_")
            if error.status.code >= 500 {
                connection.activity.recordFailure(at: clock.now(), code: error.code, message: error.message, upstream: isUpstream)
            }
            logLine(connection: connection.name, method: request.method, status: Int(error.status.code), started: started, error: error.code)
            return error.response()
        }
    }

    private func route(_ target: ProxyTarget, in registry: Registry, method: HTTPRequest.Method) throws(GatewayError) -> Connection {
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

    private func forward(
        _ request: Request, target: ProxyTarget, connection: Connection, registry: Registry, started: ContinuousClock.Instant
    ) async throws(GatewayError) -> Response {
        let settings = registry.settings
        let fields = request.headers
        try checkHeaderLimits(fields, settings: settings)
        let contentLength = fields[.contentLength].flatMap { Int($0) }
        if let contentLength, contentLength > connection.maxRequestBody {
            throw GatewayError.payloadTooLarge(limit: connection.maxRequestBody, connection: connection.name)
        }

        let caller = try await registry.authenticator.authenticate(fields[.authorization])

        let credential: Credential
        switch await CredentialResolver.credential(for: connection, caller: caller) {
        case .inject(let c): credential = c
        case .interactionRequired(let interaction):
            var e = GatewayError(code: "interaction_required", status: .unauthorized, message: interaction.message, connection: connection.name)
            e.extra["interaction_uri"] = interaction.uri
            e.headers[.wwwAuthenticate] = "Bearer error=\"interaction_required\""
            throw e
        case .failed(let failure):
            var e = GatewayError(
                code: failure.code, status: HTTPResponse.Status(code: failure.httpStatus), message: failure.message, connection: connection.name)
            if let detail = failure.detail { e.extra["detail"] = detail }
            throw e
        }

        guard let base = connection.upstreamBase else { throw GatewayError.internalError(connection.name) }
        var url = base
        url += target.remainder
        if let query = target.query { url += "?"; url += query }
        var upstream = HTTPClientRequest(url: url)
        upstream.method = HTTPMethod(rawValue: request.method.rawValue)
        upstream.headers = HeaderFilter.upstreamHeaders(from: fields, inject: credential.headers)
        let limited = LimitedBody(base: request.body, limit: connection.maxRequestBody)
        if let contentLength {
            if contentLength > 0 { upstream.body = .stream(limited, length: .known(Int64(contentLength))) }
        } else if fields[.transferEncoding] != nil {
            upstream.body = .stream(limited, length: .unknown)
        }

        let response: HTTPClientResponse
        do {
            // No logger handed to the client: at trace level it would print the injected credential.
            response = try await httpClient.execute(upstream, timeout: .nanoseconds(Int64(connection.responseTimeout.nanoseconds)))
        } catch {
            throw UpstreamErrorMapping.map(error, connection: connection)
        }

        let status = Int(response.status.code)
        let now = clock.now()
        if status >= 500 {
            connection.activity.recordFailure(at: now, code: "upstream_status", message: "the upstream answered \(status)", upstream: true)
        } else if status == 401 || status == 403 {
            connection.activity.recordFailure(at: now, code: "upstream_rejected_credential", message: "the upstream answered \(status)", upstream: true)
        } else {
            connection.activity.recordSuccess(at: now, credentialExpiresAt: credential.expiresAt)
        }

        let headers = HeaderFilter.downstreamHeaders(from: response.headers)
        let length = response.headers.first(name: "content-length").flatMap { Int($0) }
        let upstreamBody = response.body
        let name = connection.name
        let method = request.method
        let body = ResponseBody(contentLength: request.method == .head ? nil : length) { writer in
            var bytes = 0
            do {
                for try await chunk in upstreamBody {
                    bytes += chunk.readableBytes
                    try await writer.write(chunk)
                }
                try await writer.finish(nil)
                self.logLine(connection: name, method: method, status: status, started: started, bytes: bytes)
            } catch {
                self.logLine(connection: name, method: method, status: status, started: started, bytes: bytes, error: "stream_interrupted")
                throw error
            }
        }
        return Response(status: HTTPResponse.Status(code: status, reasonPhrase: response.status.reasonPhrase), headers: headers, body: body)
    }

    private func checkHeaderLimits(_ fields: HTTPFields, settings: GatewaySettings) throws(GatewayError) {
        if fields.count > settings.maxHeaderCount {
            throw GatewayError.headersTooLarge("more than \(settings.maxHeaderCount) header fields")
        }
        var total = 0
        for f in fields { total += f.name.rawName.utf8.count + f.value.utf8.count }
        if total > settings.maxHeaderBytes {
            throw GatewayError.headersTooLarge("request headers exceed \(settings.maxHeaderBytes) bytes")
        }
    }

    /// One line per proxied request; never a token, never the query string.
    func logLine(connection: String, method: HTTPRequest.Method, status: Int, started: ContinuousClock.Instant, bytes: Int? = nil, error: String? = nil) {
        let elapsed = ContinuousClock.now - started
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        var metadata: Logger.Metadata = [
            "connection": "\(connection)", "method": "\(method.rawValue)", "status": "\(status)",
            "duration_ms": "\(String(format: "%.2f", ms))",
        ]
        if let bytes { metadata["bytes"] = "\(bytes)" }
        if let error { metadata["error"] = "\(error)" }
        logger.info("proxied", metadata: metadata)
    }
}

extension Duration {
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
