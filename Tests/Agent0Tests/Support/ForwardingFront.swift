import AsyncHTTPClient
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import SwitchboardTesting
import Synchronization

/// A plain reverse proxy on a free loopback port whose backend is set later. The identity
/// provider's issuer must be known before agent0 starts (agent0's option) and agent0's URL
/// before the IdP starts (its redirect URI is registered in the IdP's directory): the front's
/// URL is the issuer, and the real IdP takes the requests once it listens.
final class ForwardingFront: Sendable {
    let server: RunningServer
    private let state: Backend

    var baseURL: String { server.baseURL }

    private init(server: RunningServer, state: Backend) {
        self.server = server
        self.state = state
    }

    static func start() async throws -> ForwardingFront {
        let backend = Backend()
        let server = try await TestHTTPServer.start(responder: ForwardingResponder(backend: backend))
        return ForwardingFront(server: server, state: backend)
    }

    /// Where to forward (`http://127.0.0.1:<port>`).
    func setBackend(_ url: String) { state.url.withLock { $0 = url } }

    func stop() async { await server.stop() }

    fileprivate final class Backend: Sendable {
        let url = Mutex<String?>(nil)
    }

    fileprivate struct ForwardingResponder: HTTPResponder {
        typealias Context = BasicRequestContext
        let backend: Backend

        func respond(to request: Request, context: BasicRequestContext) async throws -> Response {
            guard let base = backend.url.withLock({ $0 }) else {
                return Response(status: .serviceUnavailable, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "no backend yet")))
            }
            let body = try await request.body.collect(upTo: 4 << 20)
            var upstream = HTTPClientRequest(url: base + request.uri.string)
            upstream.method = HTTPMethod(rawValue: request.method.rawValue)
            for field in request.headers where !Self.hopByHop.contains(field.name.canonicalName) && field.name.canonicalName != "host" {
                upstream.headers.add(name: field.name.rawName, value: field.value)
            }
            if body.readableBytes > 0 { upstream.body = .bytes(body) }
            let response = try await Browser.client.execute(upstream, timeout: .seconds(30))
            let answer = try await response.body.collect(upTo: 4 << 20)
            var headers = HTTPFields()
            for header in response.headers where !Self.hopByHop.contains(header.name.lowercased()) {
                if let name = HTTPField.Name(header.name) { headers.append(HTTPField(name: name, value: header.value)) }
            }
            return Response(status: HTTPResponse.Status(code: Int(response.status.code)), headers: headers, body: .init(byteBuffer: answer))
        }

        static let hopByHop: Set<String> = ["content-length", "connection", "transfer-encoding", "keep-alive"]
    }
}
