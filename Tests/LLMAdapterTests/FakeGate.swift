import Synchronization

/// A gate a fake upstream waits at, opened by the test (an AsyncStream: each `open()` lets one
/// waiter through). `releaseAll()` lets every present and future waiter through, so a fake that
/// is stopped never stays stuck. No timers.
final class FakeGate: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    /// How many times a waiter reached the gate (the test can see the fake is waiting).
    let arrivals = Mutex(0)

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: Void.self)
    }

    /// Lets one waiter through (now, or the next one to arrive).
    func open() { continuation.yield() }

    /// Opens the gate for good.
    func releaseAll() { continuation.finish() }

    /// Waits until the test opens the gate. Only one request of a fake waits here at a time.
    func wait() async {
        arrivals.withLock { $0 += 1 }
        var iterator = stream.makeAsyncIterator()
        _ = await iterator.next()
    }
}

/// Requests that never get an answer until the fake stops: each waits on its own stream.
final class FakeHangs: Sendable {
    private struct State {
        var waiting: [AsyncStream<Void>.Continuation] = []
        var released = false
    }

    private let state = Mutex(State())

    /// Waits until `releaseAll()`.
    func hang() async {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
        let released = state.withLock { state -> Bool in
            if !state.released { state.waiting.append(continuation) }
            return state.released
        }
        if released { return }
        for await _ in stream {}
    }

    func releaseAll() {
        let waiting = state.withLock { state -> [AsyncStream<Void>.Continuation] in
            state.released = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.finish() }
    }
}
