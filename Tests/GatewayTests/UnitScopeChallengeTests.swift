import Foundation
@testable import Gateway
import NIOCore
import PluginAPI
import Testing

@Suite("Unit: scope challenges")
struct UnitScopeChallengeTests {
    let toolResult = #"{"jsonrpc":"2.0","id":9,"result":{"content":[{"type":"text","text":"{\"error\":\"insufficient_scope\",\"required_scopes\":[\"mcp:connect\",\"mcp:tools:read\",\"mcp:tools:manage\"],\"www_authenticate\":\"Bearer error=\\\"insufficient_scope\\\", scope=\\\"mcp:connect mcp:tools:read mcp:tools:manage\\\"\"}"}],"isError":true}}"#

    @Test func toolResultWithTheInsufficientScopeJSON() {
        let challenge = ScopeChallengeParser.fromToolResult(Data(toolResult.utf8))
        #expect(challenge?.requiredScopes == ["mcp:connect", "mcp:tools:read", "mcp:tools:manage"])
        #expect(BodyScan.mentions("insufficient_scope", in: ByteBuffer(string: toolResult)))
        #expect(!BodyScan.mentions("tools/call", in: ByteBuffer(string: toolResult)))
        #expect(BodyScan.mentions("tools/call", in: ByteBuffer(string: #"{"method":"tools/call"}"#)))
        // JSONSerialization writes "tools\/call": the gateway scans for both spellings.
        #expect(BodyScan.mentions(#"tools\/call"#, in: ByteBuffer(string: #"{"method":"tools\/call"}"#)))
    }

    /// The scan against a plain search, at the edges a `memchr`/`memcmp` loop can get wrong:
    /// a match at either end, a near miss cut off by the end, repeated first bytes, a buffer
    /// whose reader index is not 0, and a needle as long as the buffer.
    @Test func byteScanAgreesWithAPlainSearchAtTheEdges() {
        let needle = "tools/call"
        let cases = [
            "tools/call", "tools/cal", "ttools/call", "xxtools/call", "tools/callxx", "tttttools/cal", "tools/caltools/call",
            "", "t", "tools/Call", String(repeating: "tools/cal", count: 50) + "tools/call", String(repeating: "t", count: 300),
        ]
        for text in cases {
            #expect(BodyScan.mentions(needle, in: ByteBuffer(string: text)) == text.contains(needle), "\(text)")
            var shifted = ByteBuffer(string: "tools/call" + text)
            shifted.moveReaderIndex(forwardBy: 10)  // the match before the reader index must not count
            #expect(BodyScan.mentions(needle, in: shifted) == text.contains(needle), "shifted \(text)")
        }
    }

    @Test func ordinaryToolErrorsAreNotChallenges() {
        let plain = #"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"There is no todo with id 3."}],"isError":true}}"#
        #expect(ScopeChallengeParser.fromToolResult(Data(plain.utf8)) == nil)
    }

    @Test func bearerChallengeHeader() {
        let c = ScopeChallengeParser.fromHeader(#"Bearer error="insufficient_scope", scope="mcp:connect mcp:tools:manage", resource_metadata="http://x/.well-known/oauth-protected-resource""#)
        #expect(c?.requiredScopes == ["mcp:connect", "mcp:tools:manage"])
        #expect(ScopeChallengeParser.fromHeader(#"Bearer error="invalid_token""#) == nil)
    }
}
