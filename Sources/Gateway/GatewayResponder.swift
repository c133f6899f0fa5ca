import HTTPTypes
import Hummingbird
import Tracing

/// The gateway's front door: proxy routes go to the pipeline with an O(1) table look-up;
/// everything else to the small API router. Every error leaves as JSON.
struct GatewayResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let proxy: ProxyHandler
    let aggregate: AggregateEndpoint
    let api: RouterResponder<BasicRequestContext>

    func respond(to request: Request, context: Context) async throws -> Response {
        // The gateway's own MCP server (before the proxy routes: `/mcp/v/…` is not a connection).
        if let route = AggregateEndpoint.Route(path: request.head.path ?? "/") {
            guard proxy.tracing else { return await aggregate.handle(request, route: route) }
            // One server span for the endpoint's request; the calls it sends each connection are its children.
            let parent = CallTracing.parent(of: request.headers, using: HTTPFieldsCarrier())
            return await withSpan("\(request.method.rawValue) /mcp", context: parent, ofKind: .server) { span in
                span.attributes["http.request.method"] = request.method.rawValue
                span.attributes["http.route"] = request.head.path?.hasPrefix("/mcp/v/") == true ? "/mcp/v/{name}" : "/mcp"
                let response = await aggregate.handle(request, route: route)
                span.attributes["http.response.status_code"] = Int(response.status.code)
                return response
            }
        }
        do {
            if let target = try ProxyTarget.parse(request.head.path ?? "/") {
                return await proxy.handle(request, target: target)
            }
        } catch {
            return error.response()
        }
        do {
            let response = try await api.respond(to: request, context: context)
            // The router answers misses with an empty 404: give them the JSON shape too.
            if response.status == .notFound, response.body.contentLength == 0 { return GatewayError.notFound().response() }
            return response
        } catch let error as any HTTPResponseError {
            if error.status == .notFound { return GatewayError.notFound().response() }
            if error.status == .methodNotAllowed {
                return GatewayError(code: "method_not_allowed", status: .methodNotAllowed, message: "method not allowed here").response()
            }
            return GatewayError(code: "bad_request", status: error.status, message: "the request could not be handled").response()
        } catch {
            return GatewayError.internalError(nil).response()
        }
    }
}
