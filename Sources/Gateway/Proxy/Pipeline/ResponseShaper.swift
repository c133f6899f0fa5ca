import HTTPTypes
import NIOHTTP1

/// The head of every proxied answer, whichever driver writes it: the upstream's end-to-end
/// headers (``HeaderFilter``), the length when it is known, the scopes a step-up added, and the
/// gateway's own `Server` and `Date`.
///
/// Why the gateway's own `Date` and `Server`, not the upstream's: the answer comes from the
/// gateway (RFC 9110 §6.6.1 lets a proxy with a clock set it; nginx does the same), and one
/// rule for both drivers means a caller cannot tell which driver served it.
enum ResponseShaper {
    static let server = "switchboard"

    /// The answer head's fields for an upstream answer.
    static func headers(from upstream: HTTPHeaders, contentLength: Int?, widened: Set<String> = []) -> HTTPHeaders {
        var headers = HeaderFilter.downstreamHeaders(keeping: upstream)
        if let contentLength { headers.add(name: "Content-Length", value: String(contentLength)) }
        if !widened.isEmpty { headers.add(name: HeaderFilter.stepUpHeader, value: widened.sorted().joined(separator: " ")) }
        // (The filter dropped the upstream's: add, no search.)
        headers.add(name: "Server", value: server)
        headers.add(name: "Date", value: HTTPDateHeader.now())
        return headers
    }

    /// Sets the gateway's `Server` and `Date` (on the gateway's own answers too, such as errors).
    static func stamp(_ headers: inout HTTPHeaders) {
        headers.replaceOrAdd(name: "Server", value: server)
        headers.replaceOrAdd(name: "Date", value: HTTPDateHeader.now())
    }

    /// The same fields as Hummingbird's type, for the async driver's answers. `contentLength`:
    /// the body's, when known (Hummingbird chunks a stream without one).
    static func fields(from upstream: HTTPHeaders, contentLength: Int?, widened: Set<String>) -> HTTPFields {
        HTTPFields(wire: headers(from: upstream, contentLength: contentLength, widened: widened))
    }
}

extension HTTPFields {
    /// The proxy's wire headers as Hummingbird's type, names as sent (for the edges where a
    /// Hummingbird response is built, or a request read whole by the event-loop driver goes on).
    init(wire headers: HTTPHeaders) {
        self.init()
        reserveCapacity(headers.count)
        for (name, value) in headers {
            guard let fieldName = HTTPField.Name(name) else { continue }
            append(HTTPField(name: fieldName, value: value))
        }
    }
}
