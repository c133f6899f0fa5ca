@testable import Gateway
import HTTPTypes
import NIOHTTP1
import Testing

private func unitField(_ name: String, _ value: String) -> HTTPField {
    HTTPField(name: HTTPField.Name(name)!, value: value)
}

/// The caller's headers as the proxy carries them (NIO's type, its one wire type).
private func wire(_ fields: HTTPFields) -> HTTPHeaders {
    HTTPHeaders(fields.map { ($0.name.rawName, $0.value) })
}

@Suite("Unit: HeaderFilter")
struct UnitHeaderFilterTests {
    /// A caller request with every kind of header the filter has to sort.
    static func callerFields() -> HTTPFields {
        HTTPFields([
            unitField("Authorization", "Bearer user-id-token"),
            unitField("Cookie", "session=abc"),
            unitField("Host", "gateway.local:8080"),
            unitField("Content-Length", "42"),
            unitField("Connection", "keep-alive, X-Custom"),
            unitField("Keep-Alive", "timeout=5"),
            unitField("Transfer-Encoding", "chunked"),
            unitField("TE", "trailers"),
            unitField("Upgrade", "websocket"),
            unitField("Proxy-Authorization", "Basic cHJveHk6cGFzcw=="),
            unitField("Proxy-Connection", "keep-alive"),
            unitField("X-Forwarded-For", "10.0.0.1"),
            unitField("X-Forwarded-Host", "evil.example"),
            unitField("Forwarded", "for=10.0.0.1"),
            unitField("Expect", "100-continue"),
            unitField("X-Custom", "hop-by-hop because Connection names it"),
            unitField("Mcp-Session-Id", "sess-1"),
            unitField("MCP-Protocol-Version", "2025-06-18"),
            unitField("Last-Event-ID", "evt-7"),
            unitField("Accept", "application/json, text/event-stream"),
            unitField("Content-Type", "application/json"),
            unitField("X-Request-Trace", "end-to-end"),
        ])
    }

    @Test func upstreamDropsCredentialsHopByHopAndForwardingHeaders() {
        let out = HeaderFilter.upstreamHeaders(from: wire(Self.callerFields()), inject: [:])
        for name in [
            "Authorization", "Cookie", "Host", "Content-Length", "Connection", "Keep-Alive", "Transfer-Encoding", "TE",
            "Upgrade", "Proxy-Authorization", "Proxy-Connection", "X-Forwarded-For", "X-Forwarded-Host", "Forwarded",
            "Expect", "X-Custom",
        ] {
            #expect(!out.contains(name: name), "\(name) must not go upstream")
        }
    }

    @Test func upstreamKeepsEndToEndHeaders() {
        let out = HeaderFilter.upstreamHeaders(from: wire(Self.callerFields()), inject: [:])
        #expect(out["Mcp-Session-Id"] == ["sess-1"])
        #expect(out["MCP-Protocol-Version"] == ["2025-06-18"])
        #expect(out["Last-Event-ID"] == ["evt-7"])
        #expect(out["Accept"] == ["application/json, text/event-stream"])
        #expect(out["Content-Type"] == ["application/json"])
        #expect(out["X-Request-Trace"] == ["end-to-end"])
        #expect(out.count == 6, "\(out)")
    }

    @Test func injectedAuthorizationReplacesCallerAuthorization() {
        var inject = HTTPFields()
        inject[.authorization] = "Bearer upstream-token"
        let out = HeaderFilter.upstreamHeaders(from: wire(Self.callerFields()), inject: inject)
        #expect(out["Authorization"] == ["Bearer upstream-token"])
        #expect(!out.contains { $0.value.contains("user-id-token") })
    }

    @Test func injectedHeaderReplacesSameNamedCallerHeader() {
        var fields = HTTPFields()
        fields.append(unitField("X-Api-Key", "from-caller"))
        fields.append(unitField("X-Api-Key", "from-caller-2"))
        fields.append(unitField("Accept", "application/json"))
        var inject = HTTPFields()
        inject.append(unitField("x-api-key", "from-plugin"))
        let out = HeaderFilter.upstreamHeaders(from: wire(fields), inject: inject)
        #expect(out["X-Api-Key"] == ["from-plugin"])
        #expect(out["Accept"] == ["application/json"])
    }

    @Test func connectionListedHeadersAreCaseInsensitiveAndMayRepeat() {
        var fields = HTTPFields()
        fields.append(unitField("Connection", "X-One"))
        fields.append(unitField("Connection", " x-two ,X-THREE"))
        fields.append(unitField("X-One", "1"))
        fields.append(unitField("X-Two", "2"))
        fields.append(unitField("x-three", "3"))
        fields.append(unitField("X-Four", "4"))
        let out = HeaderFilter.upstreamHeaders(from: wire(fields), inject: [:])
        #expect(!out.contains(name: "X-One"))
        #expect(!out.contains(name: "X-Two"))
        #expect(!out.contains(name: "X-Three"))
        #expect(out["X-Four"] == ["4"])
        #expect(HeaderFilter.listedNames(wire(fields)) == ["x-one", "x-two", "x-three"])
    }

    @Test func downstreamDropsHopByHopContentLengthAndSetCookie() {
        let upstream = HTTPHeaders([
            ("Content-Type", "text/event-stream"),
            ("Mcp-Session-Id", "sess-1"),
            ("Content-Length", "123"),
            ("Set-Cookie", "tracking=1"),
            ("Connection", "keep-alive, X-Upstream-Hop"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "h2c"),
            ("Trailer", "X-Checksum"),
            ("Proxy-Authenticate", "Basic"),
            ("X-Upstream-Hop", "secret-hop"),
            ("Cache-Control", "no-cache"),
        ])
        let out = HeaderFilter.downstreamHeaders(keeping: upstream)
        #expect(out.first(name: "content-type") == "text/event-stream")
        #expect(out.first(name: "mcp-session-id") == "sess-1")
        #expect(out.first(name: "cache-control") == "no-cache")
        for name in [
            "Content-Length", "Set-Cookie", "Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Trailer",
            "Proxy-Authenticate", "X-Upstream-Hop",
        ] {
            #expect(!out.contains(name: name), "\(name) must not go downstream")
        }
        #expect(out.count == 3, "\(out)")
    }
}

/// The event-loop path filters NIO's `HTTPHeaders` with its own byte-level code; it must keep
/// and drop exactly what the `HTTPFields` filter of the async path keeps and drops.
@Suite("Unit: HeaderFilter, NIO header variants")
struct UnitHeaderFilterNIOVariantTests {
    private static func pairs(_ fields: HTTPFields) -> [String] {
        fields.map { "\($0.name.canonicalName): \($0.value)" }
    }

    private static func pairs(_ headers: HTTPHeaders) -> [String] {
        headers.map { "\($0.name.lowercased()): \($0.value)" }
    }

    @Test func upstreamVariantMatchesTheFieldsFilter() {
        let fields = UnitHeaderFilterTests.callerFields()
        let inject = HTTPFields([unitField("Authorization", "Bearer upstream-token"), unitField("X-Request-Trace", "replaced")])
        let viaFields = Self.pairs(HeaderFilter.upstreamHeaders(from: wire(fields), inject: inject))
        let viaHeaders = Self.pairs(HeaderFilter.upstreamHeaders(from: HTTPHeaders(fields.map { ($0.name.rawName, $0.value) }), inject: inject))
        #expect(viaHeaders == viaFields)
        #expect(!viaHeaders.contains("authorization: Bearer user-id-token"))
        #expect(viaHeaders.contains("authorization: Bearer upstream-token"))
        #expect(!viaHeaders.contains { $0.hasPrefix("x-custom:") || $0.hasPrefix("x-forwarded-") || $0.hasPrefix("cookie:") })
        #expect(viaHeaders.contains("mcp-session-id: sess-1"))
    }

    /// The answer head both drivers write (``ResponseShaper``): the upstream's end-to-end
    /// headers, then the length, and the gateway's own `Server` and `Date`, never the upstream's.
    @Test func shapedAnswerHeadIsTheGatewaysAndTheSameInBothTypes() {
        let answer = HTTPHeaders([
            ("Content-Type", "application/json"), ("Content-Length", "10"), ("Connection", "keep-alive, X-Secret-Hop"),
            ("Keep-Alive", "timeout=5"), ("Set-Cookie", "a=b"), ("X-Secret-Hop", "1"), ("Mcp-Session-Id", "s"), ("Date", "Sat, 01 Jan 2000 00:00:00 GMT"),
            ("TRANSFER-ENCODING", "chunked"), ("Trailer", "x"), ("ETag", "\"v1\""), ("Server", "upstream/1.0"),
        ])
        let shaped = ResponseShaper.headers(from: answer, contentLength: 10)
        let date = shaped.first(name: "date") ?? ""
        #expect(Self.pairs(shaped) == [
            "content-type: application/json", "mcp-session-id: s", "etag: \"v1\"", "content-length: 10", "server: switchboard", "date: \(date)",
        ])
        #expect(date.hasSuffix(" GMT") && !date.contains("2000"), "the gateway's clock, not the upstream's: \(date)")
        // Hummingbird's type (the async driver) carries the same fields in the same order.
        let fields = Self.pairs(ResponseShaper.fields(from: answer, contentLength: 10, widened: ["b", "a"]))
        #expect(fields.filter { !$0.hasPrefix("date:") } == [
            "content-type: application/json", "mcp-session-id: s", "etag: \"v1\"", "content-length: 10", "switchboard-step-up: a b", "server: switchboard",
        ])
    }

    /// Only the gateway says what a step-up obtained: an upstream cannot claim one.
    @Test func upstreamStepUpHeaderNeverReachesTheCaller() {
        var answer = HTTPHeaders()
        answer.add(name: "Switchboard-Step-Up", value: "admin:everything")
        answer.add(name: "x-kept", value: "1")
        #expect(Self.pairs(HeaderFilter.downstreamHeaders(keeping: answer)) == ["x-kept: 1"])
        #expect(ResponseShaper.fields(from: answer, contentLength: nil, widened: [])[HTTPField.Name("switchboard-step-up")!] == nil)
    }

    @Test func keepAliveOnlyConnectionHeaderListsNothingExtra() {
        let answer = HTTPHeaders([("Connection", "Keep-Alive"), ("X-Kept", "1"), ("Keep-Alive", "timeout=5")])
        #expect(Self.pairs(HeaderFilter.downstreamHeaders(keeping: answer)) == ["x-kept: 1"])
    }

    @Test func caseInsensitiveNameComparison() {
        #expect(HeaderFilter.equalsIgnoringCase("Content-LENGTH", "content-length"))
        #expect(!HeaderFilter.equalsIgnoringCase("content-lengths", "content-length"))
        #expect(!HeaderFilter.equalsIgnoringCase("content_length", "content-length"))
        #expect(HeaderFilter.hasPrefixIgnoringCase("X-Forwarded-Proto", "x-forwarded-"))
        #expect(!HeaderFilter.hasPrefixIgnoringCase("X-Forwarde", "x-forwarded-"))
    }
}

@Suite("Unit: HTTPDateHeader")
struct UnitHTTPDateHeaderTests {
    @Test func formatsIMFFixdate() {
        var rfcExample = 784_111_777  // RFC 9110 §5.6.7: Sun, 06 Nov 1994 08:49:37 GMT
        #expect(HTTPDateHeader.format(&rfcExample) == "Sun, 06 Nov 1994 08:49:37 GMT")
        var later = 1_795_777_200
        #expect(HTTPDateHeader.format(&later) == "Fri, 27 Nov 2026 11:00:00 GMT")
        #expect(HTTPDateHeader.now().hasSuffix(" GMT"))
    }
}
