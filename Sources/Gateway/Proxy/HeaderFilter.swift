import AsyncHTTPClient
import HTTPTypes
import NIOHTTP1

/// Which headers cross the gateway, in each direction.
///
/// Hop-by-hop headers (RFC 9110 §7.6.1, and any named in `Connection`) never cross. Toward
/// the upstream, the caller's `Authorization` and `Cookie` are dropped (the user's ID token
/// never leaves the gateway), as are `Host`, `Content-Length` (recomputed), `Proxy-*`,
/// `Expect` and client-supplied `Forwarded`/`X-Forwarded-*`; the plugin's headers are added.
/// Toward the agent, hop-by-hop headers, `Content-Length` (recomputed) and `Set-Cookie`
/// (cookies could never come back, since `Cookie` is not forwarded) are dropped.
enum HeaderFilter {
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization",
    ]
    static let neverUpstream: Set<String> = ["host", "authorization", "cookie", "content-length", "expect", "forwarded"]
    static let neverDownstream: Set<String> = ["content-length", "set-cookie"]

    /// Names listed in the `Connection` header(s), lowercased.
    static func connectionListed(_ fields: HTTPFields) -> Set<String> {
        var out: Set<String> = []
        for value in fields[values: .connection] {
            for token in value.split(separator: ",") {
                out.insert(token.trimmingCharacters(in: .whitespaces).lowercased())
            }
        }
        return out
    }

    /// The headers to send upstream: the caller's end-to-end headers plus `inject`.
    static func upstreamHeaders(from fields: HTTPFields, inject: HTTPFields) -> HTTPHeaders {
        let listed = fields.contains(.connection) ? connectionListed(fields) : []
        var out = HTTPHeaders()
        out.reserveCapacity(fields.count + inject.count)
        for field in fields {
            let name = field.name.canonicalName
            if hopByHop.contains(name) || neverUpstream.contains(name) || name.hasPrefix("x-forwarded-") || listed.contains(name) {
                continue
            }
            if inject.contains(field.name) { continue }
            out.add(name: field.name.rawName, value: field.value)
        }
        for field in inject { out.add(name: field.name.rawName, value: field.value) }
        return out
    }

    /// The headers to return to the caller from the upstream's response.
    static func downstreamHeaders(from headers: HTTPHeaders) -> HTTPFields {
        var listed: Set<String> = []
        for value in headers[canonicalForm: "connection"] { listed.insert(value.lowercased()) }
        var out = HTTPFields()
        out.reserveCapacity(headers.count)
        for (name, value) in headers {
            let lower = name.lowercased()
            if hopByHop.contains(lower) || neverDownstream.contains(lower) || listed.contains(lower) { continue }
            guard let fieldName = HTTPField.Name(name) else { continue }
            out.append(HTTPField(name: fieldName, value: value))
        }
        return out
    }
}
