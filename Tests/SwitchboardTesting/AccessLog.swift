public import Logging
public import PluginTestKit

/// The gateway's access log as a test reads it: one `proxied` line per call, in the order the
/// calls ended, each naming the driver that ran it (`via`): `event-loop`, `hand-over` (taken
/// by the event-loop driver, finished by the async one) or `async`. The drivers write the same
/// bytes to the client, so this is how a test tells them apart.
public struct AccessLog: Sendable {
    public let capture: CapturingLog

    /// The drivers whose answers the event-loop handler writes.
    public static let eventLoopHandler: Set<String> = ["event-loop", "hand-over"]

    public init(_ capture: CapturingLog) { self.capture = capture }

    /// A new, empty log.
    public init() { self.capture = CapturingLog() }

    /// A logger for the gateway that writes here (info level: the access log's).
    public func logger(label: String) -> Logger { capture.logger(label: label, level: .info) }

    /// The `proxied` lines so far.
    public var lines: [CapturingLog.Entry] { capture.entries.filter { $0.message == "proxied" } }

    /// The lines' drivers.
    public var drivers: [String] { lines.map { $0.metadata["via"] ?? "none" } }

    /// The lines once there are at least `count` (polled every 10 ms, up to `deadline`): a
    /// call's line may follow its answer's last byte (a streamed answer is logged as it ends).
    public func lines(atLeast count: Int, within deadline: Duration = .seconds(10)) async -> [CapturingLog.Entry] {
        let start = ContinuousClock.now
        var lines = self.lines
        while lines.count < count, ContinuousClock.now - start < deadline {
            try? await Task.sleep(for: .milliseconds(10))
            lines = self.lines
        }
        return lines
    }

    /// The driver of the `number`-th call to end (1-based), waiting for its line; nil if it never came.
    public func driver(ofCall number: Int) async -> String? {
        let lines = await lines(atLeast: number)
        return lines.count >= number ? lines[number - 1].metadata["via"] : nil
    }

    /// The drivers of the first `count` calls, waiting for their lines.
    public func drivers(ofCalls count: Int) async -> [String] {
        await lines(atLeast: count).prefix(count).map { $0.metadata["via"] ?? "none" }
    }
}
