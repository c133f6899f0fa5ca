import HTTPTypes
import Hummingbird

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
            return await aggregate.handle(request, route: route)
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
