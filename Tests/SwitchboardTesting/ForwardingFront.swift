import AsyncHTTPClient
import HTTPTypes
import Hummingbird
public import NIOCore
import NIOHTTP1
import Synchronization

/// A plain reverse proxy on a free loopback port whose backend is set later. A service that
/// must know its issuer's URL before the issuer starts (or whose issuer must know its URL
/// first) is given the front's URL; the real identity provider takes the requests once it
/// listens (``setBackend(_:)``). Follows no redirect: the backend's 302s go back as they are.
/// ``Observer`` sees every exchange that went through (to count token requests).
public final class ForwardingFront: Sendable {
    /// One exchange that went through: the request as received and the backend's status.
    public struct Exchange: Sendable {
        public var method: String
        public var path: String
        public var body: ByteBuffer
        public var status: Int
    }

    public typealias Observer = @Sendable (Exchange) -> Void

    public let server: RunningServer
    private let backend: Backend

    public var baseURL: String { server.baseURL }

    private init(server: RunningServer, backend: Backend) {
        self.server = server
        self.backend = backend
    }

    public static func start(observer: Observer? = nil) async throws -> ForwardingFront {
        let backend = Backend(observer: observer)
        let server = try await TestHTTPServer.start(responder: ForwardingResponder(backend: backend))
        return ForwardingFront(server: server, backend: backend)
    }

    /// Where to forward (`http://127.0.0.1:<port>`).
    public func setBackend(_ url: String) { backend.url.withLock { $0 = url } }

    public func stop() async { await server.stop() }

    fileprivate final class Backend: Sendable {
        let url = Mutex<String?>(nil)
        let observer: Observer?
        init(observer: Observer?) { self.observer = observer }
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
            let response = try await TestHTTP.client.execute(upstream, timeout: .seconds(30))
            let answer = try await response.body.collect(upTo: 4 << 20)
            let status = Int(response.status.code)
            backend.observer?(Exchange(method: request.method.rawValue, path: request.uri.path, body: body, status: status))
            var headers = HTTPFields()
            for header in response.headers where !Self.hopByHop.contains(header.name.lowercased()) {
                if let name = HTTPField.Name(header.name) { headers.append(HTTPField(name: name, value: header.value)) }
            }
            return Response(status: HTTPResponse.Status(code: status), headers: headers, body: .init(byteBuffer: answer))
        }

        static let hopByHop: Set<String> = ["content-length", "connection", "transfer-encoding", "keep-alive"]
    }
}
