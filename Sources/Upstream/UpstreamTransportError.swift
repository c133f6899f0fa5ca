/// How a call on the gateway's own HTTP/1.1 upstream client failed (mapped to
/// `upstream_timeout` / `upstream_unreachable` by ``UpstreamErrorMapping``).
public enum UpstreamTransportError: Error, Equatable {
    /// No TCP connection within `timeouts.connect`.
    case connectTimeout
    /// The connection was refused or could not be made.
    case connectFailed
    /// No response head within the connection's `timeouts.response`.
    case responseTimeout
    /// Silence longer than `timeouts.idle` inside a response.
    case idleTimeout
    /// The upstream closed the connection before the answer was complete.
    case closedEarly
    /// The upstream sent something that is not HTTP/1.1.
    case invalidResponse
}
