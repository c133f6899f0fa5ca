import NIOCore
import NIOHTTP1
import Upstream

/// Carries a streamed answer (an event stream, a large body, one of unknown length) from the
/// upstream connection to the caller's ``ProxyFastPathHandler`` part by part, on the event
/// loops, with no task in between. Answers the async path must see (``ProxyFastPath/AnswerRule``)
/// are not taken and stream to it as before.
struct FastPathRelay: UpstreamBodyRelay {
    let handler: NIOLoopBound<ProxyFastPathHandler>
    let request: NIOLoopBound<ProxyFastPath.Request>
    let rule: ProxyFastPath.AnswerRule

    func accepts(_ head: HTTPResponseHead) -> Bool { rule.relays(head) }

    func head(_ head: HTTPResponseHead, control: UpstreamRelayControl) {
        let request = self.request
        run { $0.relayHead(request.value, head, control: control) }
    }

    func body(_ chunk: ByteBuffer) { run { $0.relayBody(chunk) } }
    func flush() { run { $0.relayFlush() } }
    func end() { run { $0.relayEnd() } }
    func fail(_ error: any Error) { run { $0.relayFailed() } }

    /// On the caller's event loop (often the upstream connection's own: no hop then). Calls
    /// from one upstream connection keep their order either way.
    private func run(_ body: @escaping @Sendable (ProxyFastPathHandler) -> Void) { handler.run(body) }
}
