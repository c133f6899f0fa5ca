import Foundation
@testable import Agent0
@testable import Gateway
@testable import IdentityProvider
import StandardPlugins
import SwitchboardJSON

/// The parsers that read what an attacker writes, one fuzz target each. A target must not
/// crash, hang or trap on any input; what it returns is not judged here (the unit tests do).
enum FuzzTargets {
    static let all: [String: @Sendable ([UInt8]) -> Void] = [
        // connections.yaml: YAML, ${VAR} interpolation, strict decoding, validation.
        "config": { bytes in
            _ = try? loader.load(text: String(decoding: bytes, as: UTF8.self), file: "connections.yaml", baseDirectory: "/nonexistent-fuzz")
        },
        // The /rest and /mcp request target: percent-decoding, traversal checks, NFKC.
        "path": { bytes in
            _ = try? ProxyTarget.parse(String(decoding: bytes, as: UTF8.self))
        },
        // An MCP body's method, id, params.name, arguments and _meta, read without a full parse.
        "jsonrpc": { bytes in
            _ = JSONRPCPeek(bytes)
        },
        // SSE framing, fed in two pieces split where the first byte says (incremental parsing).
        "sse": { bytes in
            var parser = SSEParser()
            let cut = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
            _ = parser.feed(bytes[..<cut])
            _ = parser.feed(bytes[cut...])
        },
        // An upstream's WWW-Authenticate (Bearer parameters, scope step-up).
        "www-authenticate": { bytes in
            _ = ScopeChallengeParser.fromHeader(String(decoding: bytes, as: UTF8.self))
        },
        // A tool result carrying a scope challenge.
        "scope-challenge": { bytes in
            _ = ScopeChallengeParser.fromToolResult(Data(bytes))
        },
        // The IdP's application/x-www-form-urlencoded bodies.
        "form": { bytes in
            _ = FormFields(String(decoding: bytes, as: UTF8.self))
        },
        // agent0's Cookie header.
        "cookie": { bytes in
            _ = Cookies.value("agent0_session", in: String(decoding: bytes, as: UTF8.self))
        },
    ]

    static let loader = RegistryLoader(plugins: StandardPlugins.registry(), environment: ["FUZZ_VAR": "value", "EMPTY": ""])
}
