import Foundation
import NIOCore
import SwitchboardTesting
import Synchronization

/// A reverse proxy in front of the identity provider that records every token request: a
/// ``ForwardingFront`` whose observer keeps the `POST …/token` exchanges.
///
/// The IdP is started with its issuer set to this proxy's URL, so every party (gateway,
/// todo0, ISV, the test's browser) reaches the IdP through here, and a test can count the
/// token exchanges the gateway really made.
final class IdPFront: Sendable {
    /// One `POST …/token` that went through.
    struct TokenRequest: Sendable {
        var path: String
        var grantType: String?
        var requestedTokenType: String?
        var status: Int
    }

    static let idJAGType = "urn:ietf:params:oauth:token-type:id-jag"
    static let stsType = "urn:okta:params:oauth:token-type:oauth-sts"
    static let jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

    let proxy: ForwardingFront
    private let log: TokenLog

    private init(proxy: ForwardingFront, log: TokenLog) {
        self.proxy = proxy
        self.log = log
    }

    static func start() async throws -> IdPFront {
        let log = TokenLog()
        let proxy = try await ForwardingFront.start { exchange in
            guard exchange.method == "POST", exchange.path.hasSuffix("/token") else { return }
            let form = parseForm(String(buffer: exchange.body))
            log.entries.withLock {
                $0.append(TokenRequest(path: exchange.path, grantType: form["grant_type"], requestedTokenType: form["requested_token_type"], status: exchange.status))
            }
        }
        return IdPFront(proxy: proxy, log: log)
    }

    /// The front's URL: the IdP's issuer.
    var baseURL: String { proxy.baseURL }
    var server: RunningServer { proxy.server }

    /// Where to forward (`http://127.0.0.1:<IdP port>`), known once the IdP listens.
    func setBackend(_ url: String) { proxy.setBackend(url) }

    var tokenRequests: [TokenRequest] { log.entries.withLock { $0 } }

    /// Token exchanges for an ID-JAG at the org AS (whatever the IdP answered).
    var idJAGExchanges: Int { tokenRequests.filter { $0.path == "/oauth2/v1/token" && $0.requestedTokenType == Self.idJAGType }.count }
    /// OAuth STS token exchanges at the org AS.
    var stsExchanges: Int { tokenRequests.filter { $0.path == "/oauth2/v1/token" && $0.requestedTokenType == Self.stsType }.count }
    /// JWT-bearer grants at the todo-mcp authorization server.
    var jwtBearerGrants: Int { tokenRequests.filter { $0.path == "/oauth2/todo-mcp/v1/token" && $0.grantType == Self.jwtBearerGrant }.count }

    static func parseForm(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
            out[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return out
    }
}

/// The token requests an ``IdPFront`` saw, in order.
private final class TokenLog: Sendable {
    let entries = Mutex<[IdPFront.TokenRequest]>([])
}
