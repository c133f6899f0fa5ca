@testable import Gateway
import Testing

@Suite("Unit: ProxyTarget")
struct UnitProxyTargetTests {
    @Test func mcpRoute() throws {
        let t = try #require(try ProxyTarget.parse("/mcp/todo0"))
        #expect(t.prefix == .mcp)
        #expect(t.segment == "todo0")
        #expect(t.remainder == "")
        #expect(t.query == nil)
    }

    @Test func mcpRouteWithQuery() throws {
        let t = try #require(try ProxyTarget.parse("/mcp/todo0?x=1"))
        #expect(t.prefix == .mcp)
        #expect(t.segment == "todo0")
        #expect(t.remainder == "")
        #expect(t.query == "x=1")
    }

    @Test func restRouteWithPathAndQuery() throws {
        let t = try #require(try ProxyTarget.parse("/rest/github/repos/a/b?q=1&r=2"))
        #expect(t.prefix == .rest)
        #expect(t.segment == "github")
        #expect(t.remainder == "/repos/a/b")
        #expect(t.query == "q=1&r=2")
    }

    @Test func emptyQueryIsKeptAsEmpty() throws {
        let t = try #require(try ProxyTarget.parse("/rest/github/x?"))
        #expect(t.remainder == "/x")
        #expect(t.query == "")
    }

    @Test func percentEncodingIsKeptAsReceived() throws {
        let t = try #require(try ProxyTarget.parse("/rest/github/search/a%20b%2Bc"))
        #expect(t.remainder == "/search/a%20b%2Bc")
    }

    /// What the stricter checks must still let through: `;` parameters on plain names, an
    /// encoded `%` that is not an escape, non-ASCII names, dots inside names.
    @Test(arguments: ["/rest/github/a;v=1/x", "/rest/github/100%25", "/rest/github/caf%C3%A9", "/rest/github/%E2%80%A6more", "/rest/github/..a;b"])
    func unusualButHarmlessSegmentsPass(target: String) throws {
        #expect(try ProxyTarget.parse(target) != nil)
    }

    @Test func dotsInsideNamesAreFine() throws {
        let t = try #require(try ProxyTarget.parse("/rest/github/v1.2/file..txt/.well-known"))
        #expect(t.remainder == "/v1.2/file..txt/.well-known")
    }

    @Test(arguments: ["/rest/github/", "/rest/github/repos/", "/mcp/todo0/"])
    func trailingSlashAllowed(target: String) throws {
        let t = try #require(try ProxyTarget.parse(target))
        #expect(t.remainder.hasSuffix("/"))
        #expect(t.query == nil)
    }

    @Test(arguments: ["/api/connections/status", "/", "/healthz", "/mcp", "/rest", "/mcpx/todo0", "/restful/x"])
    func nonProxyPathsReturnNil(target: String) throws {
        #expect(try ProxyTarget.parse(target) == nil)
    }

    @Test(arguments: [
        "/rest/github/../x",
        "/rest/github/%2e%2e/x",
        "/rest/github/%2E%2e/x",
        "/rest/github/.%2e/x",
        "/rest/github/./x",
        "/rest/github/%2e/x",
        "/rest/github/x/..",
        "/rest/github/a%2fb",
        "/rest/github/a%2Fb",
        "/rest/github/a%5cb",
        "/rest/github/a%5Cb",
        "/rest/github//evil.com/x",
        "/rest/github/a//b",
        "//evil.com/rest/x",
        "http://evil.com/rest/github/x",
        "evil.com/rest/github/x",
        "*",
        "/rest/github/%zz",
        "/rest/github/%2",
        "/rest/github/a%",
        "/rest/github/a%00b",
        "/rest/github/a%0d%0ab",
        "/rest/github/a%7fb",
        "/rest/github/x#frag",
        "/mcp/todo0#frag",
        "/rest/",
        "/mcp/",
        "/rest//x",
        // Found by an outside probe (issue 20): what Tomcat, Jetty, Spring or a lax decoder reads as `..`.
        "/rest/github/..;/x",
        "/rest/github/..;jsessionid=1/x",
        "/rest/github/.;/x",
        "/rest/github/%2e%2e;/x",
        "/rest/github/%252e%252e/x",
        "/rest/github/%252E%252E/x",
        "/rest/github/a%252fb",
        "/rest/github/%c0%ae%c0%ae/x",
        "/rest/github/%e0%80%ae/x",
        "/rest/github/%ef%bc%8e%ef%bc%8e/x",
        "/rest/github/%e2%80%a5/x",
        "/rest/github/%e2%80%a4%e2%80%a4/x",
        "/rest/github/%ef%b9%92./x",
        "/rest/github/\u{FF0E}\u{FF0E}/x",
        "/rest/..;/x",
    ])
    func rejected(target: String) {
        do {
            let parsed = try ProxyTarget.parse(target)
            Issue.record("'\(target)' was accepted: \(String(describing: parsed))")
        } catch {
            #expect(error.code == "invalid_path", "'\(target)': \(error.code)")
            #expect(error.status == .badRequest)
            #expect(!error.message.isEmpty)
        }
    }

    /// Dot segments, encoded slashes and control characters are refused in the route segment too.
    @Test(arguments: ["/rest/../x", "/rest/%2e%2e/x", "/mcp/.", "/mcp/..", "/rest/a%2fb/x", "/mcp/a%00b", "/mcp/%zz"])
    func invalidRouteSegmentRejected(target: String) {
        do {
            let parsed = try ProxyTarget.parse(target)
            Issue.record("'\(target)' was accepted with segment '\(parsed?.segment ?? "")'")
        } catch {
            #expect(error.code == "invalid_path")
        }
    }

    @Test func percentDecode() {
        #expect(ProxyTarget.percentDecode("a%2Fb%2e") == Array("a/b.".utf8))
        #expect(ProxyTarget.percentDecode("plain") == Array("plain".utf8))
        #expect(ProxyTarget.percentDecode("%g0") == nil)
        #expect(ProxyTarget.percentDecode("%4") == nil)
    }
}
