public import Foundation
public import Logging

/// Which model answers. The offline planner is the default, so the system runs on a fresh
/// machine with no key and no network.
public enum LLMBackendSetting: Sendable, Equatable, CustomStringConvertible {
    case offline
    /// The Anthropic Messages API. `model` replaces the model the client names, when set.
    case anthropic(apiKey: String, baseURL: String, model: String?)
    /// AWS Bedrock's runtime for an Anthropic model, signed with SigV4.
    case bedrock(accessKeyID: String, secretAccessKey: String, sessionToken: String?, region: String, modelID: String, endpoint: String?)

    public var name: String {
        switch self {
        case .offline: return "offline"
        case .anthropic: return "anthropic"
        case .bedrock: return "bedrock"
        }
    }

    /// Never shows a key.
    public var description: String {
        switch self {
        case .offline: return "offline"
        case .anthropic(_, let baseURL, let model): return "anthropic(\(baseURL), model: \(model ?? "as requested"))"
        case .bedrock(_, _, _, let region, let modelID, let endpoint): return "bedrock(\(region), \(modelID)\(endpoint.map { ", " + $0 } ?? ""))"
        }
    }
}

/// A configuration problem found at start (missing variable, bad number), with the fix.
public struct LLMConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Everything `switchboard llm` needs.
public struct LLMAdapterOptions: Sendable {
    public var host: String = "127.0.0.1"
    /// 0 = a free port.
    public var port: Int = 4000
    public var backend: LLMBackendSetting = .offline
    /// When set, clients must send it (`x-api-key` or `Authorization: Bearer`).
    public var apiKey: String?
    public var maxRequestBody: Int = 8 * 1024 * 1024
    public var maxResponseBody: Int = 32 * 1024 * 1024
    /// Deadline of one upstream attempt (whole answer, or the head of a stream).
    public var upstreamTimeout: Duration = .seconds(600)
    public var connectTimeout: Duration = .seconds(10)
    /// Longest silence while reading an upstream answer or stream.
    public var idleTimeout: Duration = .seconds(300)
    public var maxRetries: Int = 2
    public var retryBaseDelay: Duration = .milliseconds(500)
    public var retryMaxDelay: Duration = .seconds(8)
    /// The SigV4 clock (tests pin it to check a known signature).
    public var now: @Sendable () -> Date = { Date() }
    public var logger: Logger = Logger(label: "switchboard.llm")
    public var onServerRunning: (@Sendable (Int) async -> Void)?

    public init() {}

    /// Options from the environment (flags in the CLI override host and port):
    /// `LLM_BACKEND` (offline | anthropic | bedrock; unset: anthropic when `ANTHROPIC_API_KEY`
    /// is set, bedrock when `BEDROCK_MODEL_ID` and AWS keys are, else offline),
    /// `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`, `ANTHROPIC_MODEL`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or `AWS_DEFAULT_REGION`),
    /// `BEDROCK_MODEL_ID`, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, `LLM_API_KEY`, `LLM_HOST`,
    /// `LLM_PORT`, `LLM_MAX_RETRIES`, `LLM_TIMEOUT` (seconds), `LLM_MAX_BODY` (bytes).
    public init(environment env: [String: String]) throws(LLMConfigurationError) {
        func value(_ name: String) -> String? {
            guard let v = env[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
            return v
        }
        func number(_ name: String, in range: ClosedRange<Int>) throws(LLMConfigurationError) -> Int? {
            guard let raw = value(name) else { return nil }
            guard let n = Int(raw), range.contains(n) else {
                throw LLMConfigurationError(description: "\(name)=\(raw) is not a whole number in \(range.lowerBound)…\(range.upperBound)")
            }
            return n
        }
        host = value("LLM_HOST") ?? host
        port = try number("LLM_PORT", in: 0...65535) ?? port
        apiKey = value("LLM_API_KEY")
        maxRetries = try number("LLM_MAX_RETRIES", in: 0...10) ?? maxRetries
        if let seconds = try number("LLM_TIMEOUT", in: 1...3600) { upstreamTimeout = .seconds(seconds) }
        maxRequestBody = try number("LLM_MAX_BODY", in: 1024...(256 * 1024 * 1024)) ?? maxRequestBody

        let anthropicKey = value("ANTHROPIC_API_KEY")
        let region = value("AWS_REGION") ?? value("AWS_DEFAULT_REGION")
        let bedrockReady = value("BEDROCK_MODEL_ID") != nil && value("AWS_ACCESS_KEY_ID") != nil && value("AWS_SECRET_ACCESS_KEY") != nil
        let choice = value("LLM_BACKEND")?.lowercased() ?? (anthropicKey != nil ? "anthropic" : bedrockReady ? "bedrock" : "offline")
        switch choice {
        case "offline":
            backend = .offline
        case "anthropic":
            guard let anthropicKey else { throw LLMConfigurationError(description: "LLM_BACKEND=anthropic needs ANTHROPIC_API_KEY") }
            let base = value("ANTHROPIC_BASE_URL") ?? "https://api.anthropic.com"
            guard let url = URL(string: base), url.scheme == "https" || url.scheme == "http", url.host != nil else {
                throw LLMConfigurationError(description: "ANTHROPIC_BASE_URL=\(base) is not an http(s) URL")
            }
            backend = .anthropic(apiKey: anthropicKey, baseURL: base, model: value("ANTHROPIC_MODEL"))
        case "bedrock":
            let missing = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "BEDROCK_MODEL_ID"].filter { value($0) == nil } + (region == nil ? ["AWS_REGION"] : [])
            guard missing.isEmpty else { throw LLMConfigurationError(description: "LLM_BACKEND=bedrock needs " + missing.joined(separator: ", ")) }
            let endpoint = value("AWS_ENDPOINT_URL_BEDROCK_RUNTIME") ?? value("AWS_ENDPOINT_URL")
            if let endpoint, URL(string: endpoint)?.host == nil {
                throw LLMConfigurationError(description: "the Bedrock endpoint \(endpoint) is not a URL")
            }
            backend = .bedrock(
                accessKeyID: value("AWS_ACCESS_KEY_ID")!, secretAccessKey: value("AWS_SECRET_ACCESS_KEY")!, sessionToken: value("AWS_SESSION_TOKEN"),
                region: region!, modelID: value("BEDROCK_MODEL_ID")!, endpoint: endpoint)
        default:
            throw LLMConfigurationError(description: "LLM_BACKEND=\(choice) is not one of offline, anthropic, bedrock")
        }
    }
}
