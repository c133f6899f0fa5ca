import AsyncHTTPClient
import HTTPTypes
import NIOHTTP1
import Upstream

/// Which headers cross the gateway, in each direction.
///
/// Hop-by-hop headers (RFC 9110 §7.6.1, and any named in `Connection`) never cross. Toward
/// the upstream, the caller's `Authorization` and `Cookie` are dropped (the user's ID token
/// never leaves the gateway), as are `Host`, `Content-Length` (recomputed), `Proxy-*`,
/// `Expect` and client-supplied `Forwarded`/`X-Forwarded-*`; the plugin's headers are added.
/// Toward the agent, hop-by-hop headers, `Content-Length` (recomputed) and `Set-Cookie`
/// (cookies could never come back, since `Cookie` is not forwarded) are dropped, and so are
/// an upstream's `Switchboard-Step-Up` (only the gateway says what a step-up obtained) and
/// its `Date` and `Server` (the gateway sets its own, ``ResponseShaper``).
enum HeaderFilter {
    /// The answer header naming the scopes a step-up added for this call (space separated).
    static let stepUpHeader = "switchboard-step-up"

    /// A caller's header that never goes upstream (any case; `Connection`-listed names aside).
    static func dropsUpstream(_ name: String) -> Bool {
        isHopByHop(name) || isNeverUpstream(name) || hasPrefixIgnoringCase(name, "x-forwarded-")
    }

    /// An upstream's header that never goes back to the caller (any case; `Connection`-listed aside).
    static func dropsDownstream(_ name: String) -> Bool {
        isHopByHop(name) || equalsIgnoringCase(name, "content-length") || equalsIgnoringCase(name, "set-cookie")
            || equalsIgnoringCase(name, stepUpHeader) || equalsIgnoringCase(name, "date") || equalsIgnoringCase(name, "server")
    }

    /// The headers to send upstream: the caller's end-to-end headers plus `inject` (the
    /// plugin's, which replace the caller's of the same name). NIO's header type is the
    /// proxy's one wire type (both drivers); names are judged on their bytes, no allocation.
    static func upstreamHeaders(from headers: HTTPHeaders, inject: HTTPFields) -> HTTPHeaders {
        let listed = listedNames(headers)
        var out = HTTPHeaders()
        out.reserveCapacity(headers.count + inject.count)
        for (name, value) in headers {
            if dropsUpstream(name) { continue }
            if !listed.isEmpty, listed.contains(where: { equalsIgnoringCase(name, $0) }) { continue }
            if !inject.isEmpty, inject.contains(where: { equalsIgnoringCase(name, $0.name.canonicalName) }) { continue }
            out.add(name: name, value: value)
        }
        for field in inject { out.add(name: field.name.rawName, value: field.value) }
        return out
    }

    /// The upstream's answer headers that go back to the caller (``ResponseShaper`` adds the
    /// gateway's own).
    static func downstreamHeaders(keeping headers: HTTPHeaders) -> HTTPHeaders {
        let listed = listedNames(headers)
        var out = HTTPHeaders()
        out.reserveCapacity(headers.count + 2)
        for (name, value) in headers {
            if dropsDownstream(name) { continue }
            if !listed.isEmpty, listed.contains(where: { equalsIgnoringCase(name, $0) }) { continue }
            out.add(name: name, value: value)
        }
        return out
    }

    /// Names listed in `Connection`, lowercased (`keep-alive` alone, the usual value, is
    /// hop-by-hop anyway and costs nothing).
    static func listedNames(_ headers: HTTPHeaders) -> [String] {
        var plain = true
        for (name, value) in headers where equalsIgnoringCase(name, "connection") {
            if !(equalsIgnoringCase(value, "keep-alive") || equalsIgnoringCase(value, "close")) { plain = false }
        }
        return plain ? [] : headers[canonicalForm: "connection"].map { $0.lowercased() }
    }

    private static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: return equalsIgnoringCase(name, "te")
        case 7: return equalsIgnoringCase(name, "trailer") || equalsIgnoringCase(name, "upgrade")
        case 10: return equalsIgnoringCase(name, "connection") || equalsIgnoringCase(name, "keep-alive")
        case 16: return equalsIgnoringCase(name, "proxy-connection")
        case 17: return equalsIgnoringCase(name, "transfer-encoding")
        case 18: return equalsIgnoringCase(name, "proxy-authenticate")
        case 19: return equalsIgnoringCase(name, "proxy-authorization")
        default: return false
        }
    }

    private static func isNeverUpstream(_ name: String) -> Bool {
        switch name.utf8.count {
        case 4: return equalsIgnoringCase(name, "host")
        case 6: return equalsIgnoringCase(name, "cookie") || equalsIgnoringCase(name, "expect")
        case 9: return equalsIgnoringCase(name, "forwarded")
        case 13: return equalsIgnoringCase(name, "authorization")
        case 14: return equalsIgnoringCase(name, "content-length")
        default: return false
        }
    }

    /// `name` equals `lower` (lowercase ASCII) ignoring ASCII case (``ASCIICase``).
    static func equalsIgnoringCase(_ name: String, _ lower: String) -> Bool { ASCIICase.equals(name, lower) }

    static func hasPrefixIgnoringCase(_ name: String, _ lower: String) -> Bool { ASCIICase.hasPrefix(name, lower) }
}
