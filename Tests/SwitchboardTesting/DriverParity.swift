public import NIOHTTP1

/// What the gateway's two proxy drivers (the event-loop path and the async path) must agree
/// on in an answer, for the parity suites of GatewayTests and EndToEndTests.
public enum DriverParity {
    /// Header fields (lowercased names) allowed to differ between the drivers: `Date`, which
    /// the event-loop path keeps from the upstream and Hummingbird stamps with its own clock
    /// (how a test tells the drivers apart, see ``ScriptedUpstream/date``). Add here any
    /// header that names the driver, should one appear.
    public static let driverHeaders: Set<String> = ["date"]

    /// The header fields as the client received them, names as sent and in order, without
    /// ``driverHeaders``: one `name: value` string each.
    public static func headerList(_ headers: HTTPHeaders) -> [String] {
        headers.filter { !driverHeaders.contains($0.name.lowercased()) }.map { "\($0.name): \($0.value)" }
    }
}
