public import NIOHTTP1

/// What the gateway's two proxy drivers (the event-loop path and the async path) must agree
/// on in an answer, for the parity suites of GatewayTests and EndToEndTests.
public enum DriverParity {
    /// Header fields (lowercased names) allowed to differ between the drivers: `Date`, the
    /// gateway's clock at the moment each answer was written (both drivers stamp it,
    /// ``ScriptedUpstream/date`` never reaches the caller). Which driver ran a call shows only in
    /// the access log (``AccessLog``).
    public static let driverHeaders: Set<String> = ["date"]

    /// The header fields as the client received them, names as sent and in order, without
    /// ``driverHeaders``: one `name: value` string each.
    public static func headerList(_ headers: HTTPHeaders) -> [String] {
        headers.filter { !driverHeaders.contains($0.name.lowercased()) }.map { "\($0.name): \($0.value)" }
    }
}
