public import Foundation
public import PluginAPI
import Synchronization

/// A ``GatewayClock`` that stands still until the test moves it.
///
/// It starts at the real time by default: a plugin signs client assertions with
/// `context.clock`, and a real identity provider refuses assertions from far in the future or
/// past. Move it by seconds or minutes, not by hours, when a real IdP is in the loop.
public final class TestClock: GatewayClock {
    private let current: Mutex<Date>

    public init(_ start: Date = Date()) { current = Mutex(start) }

    public func now() -> Date { current.withLock { $0 } }

    /// Moves the clock forward (or back, with a negative value).
    public func advance(by seconds: TimeInterval) { current.withLock { $0 += seconds } }

    /// Moves the clock forward by `duration`.
    public func advance(by duration: Duration) {
        let (seconds, attoseconds) = duration.components
        advance(by: TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18)
    }

    /// Sets the clock to `date`.
    public func set(_ date: Date) { current.withLock { $0 = date } }
}
