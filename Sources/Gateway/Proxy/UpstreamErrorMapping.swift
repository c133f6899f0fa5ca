import AsyncHTTPClient
import NIOCore
import NIOPosix
import Upstream

/// Turns an upstream call's failure into the gateway error the agent sees.
enum UpstreamErrorMapping {
    static func map(_ error: any Error, connection: Connection) -> GatewayError {
        if error is BodyLimitExceeded {
            return .payloadTooLarge(limit: connection.maxRequestBody, connection: connection.name)
        }
        if let e = error as? UpstreamTransportError {
            switch e {
            case .connectTimeout, .responseTimeout, .idleTimeout: return .upstreamTimeout(connection.name)
            case .connectFailed, .closedEarly, .invalidResponse: return .upstreamUnreachable(connection.name)
            }
        }
        if let e = error as? HTTPClientError {
            if e == .deadlineExceeded || e == .readTimeout || e == .connectTimeout || e == .writeTimeout {
                return .upstreamTimeout(connection.name)
            }
            if e == .cancelled { return .upstreamTimeout(connection.name) }
        }
        if error is ChannelError, case .connectTimeout = error as! ChannelError {
            return .upstreamTimeout(connection.name)
        }
        return .upstreamUnreachable(connection.name)
    }
}
