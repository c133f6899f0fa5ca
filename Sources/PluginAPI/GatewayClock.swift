public import Foundation

/// The wall clock every expiry decision uses. Tests substitute a fixed or manual clock.
public protocol GatewayClock: Sendable {
    func now() -> Date
}

/// The system's wall clock.
public struct SystemClock: GatewayClock {
    public init() {}
    public func now() -> Date { Date() }
}
