import Foundation
public import Logging

/// Everything `switchboard agent` needs. The CLI and the tests build the same one.
public struct Agent0Options: Sendable {
    public var host: String = "127.0.0.1"
    /// 0 picks a free port (tests).
    public var port: Int = 3000
    /// The URL a browser reaches agent0 at; default `http://{host}:{port}` (the bound port when
    /// `port` is 0). The redirect URI is `{publicURL}/callback`, the post-logout one `{publicURL}/`.
    /// Cookies are `Secure` when it is https.
    public var publicURL: String?
    /// The users' OIDC issuer (the development IdP, or an Okta org).
    public var issuer: String = "http://127.0.0.1:9000"
    /// agent0's OIDC client (the `aud` of the ID tokens the gateway accepts).
    public var clientID: String = "agent0"
    /// A secret: never logged. Sent with client_secret_basic.
    public var clientSecret: String = "agent0-dev-secret"
    public var scopes: String = "openid profile email"
    /// The gateway every tool call goes through.
    public var gatewayURL: String = "http://127.0.0.1:8080"
    /// The LLM adapter (Anthropic Messages API).
    public var llmURL: String = "http://127.0.0.1:4000"
    /// Sent as `x-api-key` when the adapter requires one.
    public var llmAPIKey: String?
    public var model: String = "claude-sonnet-4-5"
    /// Model calls per turn (each may ask for tools).
    public var maxRounds: Int = 8
    /// Whole turns kept in the model's context; older turns are dropped at turn boundaries.
    public var maxTurnsInContext: Int = 20
    /// The gateway application offered as `github_list_repos` / `github_comment_on_pr`.
    public var githubConnection: String = "github"
    /// Deadline of one gateway call, one model call.
    public var toolTimeout: Duration = .seconds(60)
    public var modelTimeout: Duration = .seconds(120)
    /// Longest a signed-out sign-in attempt (state, nonce, verifier) stays valid.
    public var loginTimeout: Duration = .seconds(600)
    public var logger: Logger = Logger(label: "switchboard.agent")
    public var onServerRunning: (@Sendable (Int) async -> Void)?

    public init() {}

    /// Reads `AGENT0_*`, `OKTA_ISSUER`, `GATEWAY_URL`, `LLM_URL`, `LLM_API_KEY` (flags win; the
    /// CLI applies them after).
    public init(environment env: [String: String]) {
        self.init()
        func value(_ key: String) -> String? { env[key].flatMap { $0.isEmpty ? nil : $0 } }
        if let v = value("AGENT0_HOST") { host = v }
        if let v = value("AGENT0_PORT").flatMap(Int.init) { port = v }
        if let v = value("AGENT0_PUBLIC_URL") { publicURL = v }
        if let v = value("OKTA_ISSUER") { issuer = v }
        if let v = value("AGENT0_CLIENT_ID") { clientID = v }
        if let v = value("AGENT0_CLIENT_SECRET") { clientSecret = v }
        if let v = value("GATEWAY_URL") { gatewayURL = v }
        if let v = value("LLM_URL") { llmURL = v }
        if let v = value("LLM_API_KEY") { llmAPIKey = v }
        if let v = value("AGENT0_MODEL") { model = v }
    }
}
