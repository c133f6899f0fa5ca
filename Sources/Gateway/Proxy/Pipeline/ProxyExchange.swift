import HTTPTypes
import NIOCore
import OTLPTracing
import PluginAPI
import Tracing

/// One proxied call as it passes the pipeline's steps, whichever driver runs them. It holds
/// the registry generation the call was admitted under: a reload while the call is on its way
/// (or while it is handed from the event-loop driver to the async one) changes nothing for
/// it. A class: the event-loop driver moves it between its states and closures uncopied (its
/// own request type extends it, so taking a request costs one allocation).
///
/// `@unchecked Sendable`: one driver owns it at a time. The event-loop driver uses it on its
/// loop; a hand-over gives it to the async driver, and the event-loop driver reads only its
/// `let`s after that.
class ProxyExchange: @unchecked Sendable {
    let registry: Registry
    let target: ProxyTarget
    let connection: Connection
    let method: HTTPRequest.Method
    let started: ContinuousClock.Instant
    /// The verified caller; nil until the ID token is verified.
    var caller: CallerIdentity?
    /// The credential to inject; nil until known.
    var credential: Credential?
    /// Which driver runs the call (the access log's `via`).
    var driver: Driver
    /// The rate limits counted this call (once, whichever driver did): nil until then, and
    /// the refusal when a limit was reached.
    var rateLimited: RateLimiter.Refusal??
    /// For the audit trail: what the call asked (read once, by the step that first needed it),
    /// the rule or limit that refused it, and the step-ups on its way.
    var facts: CallFacts?
    /// An MCP call's body when the audit trail is on: the writer reads what no step did from it (off the path).
    var auditBody: ByteBuffer?
    var refusedBy: String?
    var stepUps = 0
    /// The call's server span, when the process traces (``CallTracing``).
    var span: (any Span)?
    /// Whether the span has the MCP method and tool already (``CallTracing/describe(_:mcpBody:)``).
    var spanDescribed = false
    /// The server span's attributes, gathered as the call goes and set on it once when it ends
    /// (each write to a span is a lock and a copy of its attribute set).
    var spanAttributes: [(String, OTLPValue)] = []
    /// Where the trace context goes in this MCP body's `params`, when describing the span read it.
    var traceMetaAt: CallTracing.MetaInsertion?

    enum Driver: String, Sendable {
        /// Answered by the event-loop driver alone.
        case eventLoop = "event-loop"
        /// Taken by the event-loop driver and finished by the async one (its answer written
        /// back through the event-loop handler).
        case handOver = "hand-over"
        /// Run by the async driver from the start (Hummingbird's router).
        case async
        /// Sent by the gateway's own `/mcp` endpoint (one server's part of an aggregated call),
        /// run by the async driver.
        case aggregate
    }

    init(registry: Registry, target: ProxyTarget, connection: Connection, method: HTTPRequest.Method, driver: Driver, started: ContinuousClock.Instant = .now) {
        self.driver = driver
        self.registry = registry
        self.target = target
        self.connection = connection
        self.method = method
        self.started = started
    }

    /// The upstream's request target: its base path, this call's remainder, its query.
    var upstreamTarget: String? {
        guard let origin = connection.upstreamOrigin else { return nil }
        var path = origin.basePath
        path += target.remainder
        if path.isEmpty { path = "/" }
        if let query = target.query { path += "?"; path += query }
        return path
    }

    /// How this call's answers are judged (refresh, step-up): see ``AnswerPolicy``. `body`:
    /// the request body when it was kept.
    func answerPolicy(body: ByteBuffer?) -> AnswerPolicy {
        AnswerPolicy(connection: connection, isMCP: target.prefix == .mcp, body: body)
    }
}
