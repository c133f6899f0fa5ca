public import Hummingbird
import Logging
import NIOCore

/// A real HTTP server on a free loopback port, for integration tests.
public final class RunningServer: Sendable {
    public let port: Int
    private let task: Task<Void, any Error>

    init(port: Int, task: Task<Void, any Error>) {
        self.port = port
        self.task = task
    }

    /// `http://127.0.0.1:<port>`
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Stops the server and waits for it to finish.
    public func stop() async {
        task.cancel()
        _ = try? await task.value
    }
}

public enum TestHTTPServer {
    /// Starts `router` on 127.0.0.1 with a free port.
    public static func start(_ router: Router<BasicRequestContext>) async throws -> RunningServer {
        try await start(responder: router.buildResponder())
    }

    /// Starts any responder on 127.0.0.1 with a free port.
    public static func start<R: HTTPResponder>(responder: R) async throws -> RunningServer
    where R.Context: InitializableFromSource<ApplicationRequestContextSource> {
        let logger = Logger.quiet("test-server")
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            responder: responder,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) },
            logger: logger)
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        return try await waitForPort(stream, task: task)
    }

    /// Runs an already-built application (e.g. the gateway) whose `onServerRunning` reports to `stream`.
    public static func run(_ app: some ApplicationProtocol, ports stream: AsyncStream<Int>) async throws -> RunningServer {
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        return try await waitForPort(stream, task: task)
    }

    private static func waitForPort(_ stream: AsyncStream<Int>, task: Task<Void, any Error>) async throws -> RunningServer {
        for await port in stream {
            return RunningServer(port: port, task: task)
        }
        task.cancel()
        throw CancellationError()
    }
}
