import Testing
@testable import LLMAdapter

@Suite("Retry policy")
struct RetryPolicyTests {
    let policy = RetryPolicy()

    @Test func defaults() {
        #expect(policy.maxRetries == 2)
        #expect(policy.baseDelay == .milliseconds(500))
        #expect(policy.maxDelay == .seconds(8))
    }

    @Test func stopsAfterMaxRetries() {
        #expect(policy.delay(beforeRetry: 0, retryAfter: nil) != nil)
        #expect(policy.delay(beforeRetry: 1, retryAfter: nil) != nil)
        #expect(policy.delay(beforeRetry: 2, retryAfter: nil) == nil)
        #expect(policy.delay(beforeRetry: 3, retryAfter: "1") == nil)
        #expect(RetryPolicy(maxRetries: 0).delay(beforeRetry: 0, retryAfter: nil) == nil)
    }

    @Test func honoursRetryAfter() {
        #expect(policy.delay(beforeRetry: 0, retryAfter: "2") == .seconds(2))
        #expect(policy.delay(beforeRetry: 1, retryAfter: " 2 ") == .seconds(2))
        #expect(policy.delay(beforeRetry: 0, retryAfter: "0.25") == .milliseconds(250))
        #expect(policy.delay(beforeRetry: 0, retryAfter: "0") == .zero)
        #expect(policy.delay(beforeRetry: 0, retryAfter: "8") == .seconds(8))
    }

    @Test func retryAfterAboveMaxDelayEndsTheRetries() {
        #expect(policy.delay(beforeRetry: 0, retryAfter: "9") == nil)
        #expect(policy.delay(beforeRetry: 0, retryAfter: "3600") == nil)
        #expect(RetryPolicy(maxDelay: .seconds(1)).delay(beforeRetry: 0, retryAfter: "2") == nil)
        // An upstream's absurd value ends the retries; it used to trap converting to milliseconds.
        for absurd in ["1e300", "inf", "9223372036854775807", "1e16"] {
            #expect(policy.delay(beforeRetry: 0, retryAfter: absurd) == nil, "\(absurd)")
        }
    }

    @Test(arguments: ["abc", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", ""])
    func unusableRetryAfterFallsBackToBackoff(_ value: String) throws {
        let delay = try #require(policy.delay(beforeRetry: 0, retryAfter: value))
        #expect(delay >= .milliseconds(400) && delay <= .milliseconds(600))
    }

    @Test func exponentialWithinJitter() {
        let policy = RetryPolicy(maxRetries: 10, baseDelay: .milliseconds(100), maxDelay: .seconds(60))
        for retry in 0..<6 {
            let nominal = Duration.milliseconds(100) * (1 << retry)
            var seen: [Duration] = []
            for _ in 0..<100 {
                guard let delay = policy.delay(beforeRetry: retry, retryAfter: nil) else { Issue.record("nil at \(retry)"); return }
                #expect(delay >= nominal * 0.8 && delay <= nominal * 1.2, "retry \(retry): \(delay)")
                seen.append(delay)
            }
            // Jitter: not the same wait every time.
            #expect(Set(seen).count > 1)
        }
    }

    @Test func cappedAtMaxDelay() {
        let policy = RetryPolicy(maxRetries: 40, baseDelay: .milliseconds(500), maxDelay: .seconds(8))
        for retry in [5, 10, 30] {
            for _ in 0..<50 {
                guard let delay = policy.delay(beforeRetry: retry, retryAfter: nil) else { Issue.record("nil at \(retry)"); return }
                // min(exponential, maxDelay), then ±20%.
                #expect(delay >= .milliseconds(6400) && delay <= .milliseconds(9600), "retry \(retry): \(delay)")
            }
        }
    }

    @Test("BUG: jitter is applied after the cap, so a wait can exceed maxDelay (up to 1.2 × maxDelay)")
    func neverAboveMaxDelay() {
        let policy = RetryPolicy(maxRetries: 10, baseDelay: .milliseconds(500), maxDelay: .seconds(8))
        var longest = Duration.zero
        for _ in 0..<200 {
            if let delay = policy.delay(beforeRetry: 6, retryAfter: nil) { longest = max(longest, delay) }
        }
        #expect(longest <= policy.maxDelay, "longest wait \(longest) with maxDelay \(policy.maxDelay)")
    }

    @Test(arguments: [429, 529, 500, 502, 503, 504, 599])
    func retryable(_ status: Int) { #expect(RetryPolicy.isRetryable(status: status)) }

    @Test(arguments: [200, 301, 400, 401, 403, 404, 408, 413, 422, 600])
    func notRetryable(_ status: Int) { #expect(!RetryPolicy.isRetryable(status: status)) }
}

@Suite("LLMAdapterOptions from the environment")
struct LLMAdapterOptionsTests {
    static let bedrockEnv = [
        "LLM_BACKEND": "bedrock", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "AWS_SESSION_TOKEN": "SESSIONTOKENEXAMPLE", "AWS_REGION": "us-west-2", "BEDROCK_MODEL_ID": "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "http://127.0.0.1:9123",
    ]

    /// The error's description, or nil when the environment was accepted.
    static func failure(_ env: [String: String]) -> String? {
        do throws(LLMConfigurationError) {
            _ = try LLMAdapterOptions(environment: env)
            return nil
        } catch {
            return error.description
        }
    }

    @Test func emptyEnvironmentIsOffline() throws {
        let options = try LLMAdapterOptions(environment: [:])
        #expect(options.backend == .offline)
        #expect(options.host == "127.0.0.1")
        #expect(options.port == 4000)
        #expect(options.apiKey == nil)
        #expect(options.maxRetries == 2)
        #expect(options.backend.description == "offline")
    }

    @Test func anthropicKeyAloneChoosesAnthropic() throws {
        let options = try LLMAdapterOptions(environment: ["ANTHROPIC_API_KEY": "sk-ant-secret-123"])
        #expect(options.backend == .anthropic(apiKey: "sk-ant-secret-123", baseURL: "https://api.anthropic.com", model: nil))
        #expect(options.backend.name == "anthropic")
    }

    @Test func anthropicBaseURLAndModel() throws {
        let options = try LLMAdapterOptions(environment: [
            "ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": "http://127.0.0.1:8080", "ANTHROPIC_MODEL": "claude-sonnet-4-5",
        ])
        #expect(options.backend == .anthropic(apiKey: "k", baseURL: "http://127.0.0.1:8080", model: "claude-sonnet-4-5"))
    }

    @Test func anthropicWithoutKey() throws {
        let message = try #require(Self.failure(["LLM_BACKEND": "anthropic"]))
        #expect(message.contains("ANTHROPIC_API_KEY"))
        // A blank key is no key.
        #expect(Self.failure(["LLM_BACKEND": "anthropic", "ANTHROPIC_API_KEY": "   "])?.contains("ANTHROPIC_API_KEY") == true)
    }

    @Test(arguments: ["ftp://example.com", "not a url", "https://"])
    func badAnthropicBaseURL(_ url: String) throws {
        let message = try #require(Self.failure(["ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": url]))
        #expect(message.contains("ANTHROPIC_BASE_URL"))
    }

    @Test func bedrockWithEverything() throws {
        let options = try LLMAdapterOptions(environment: Self.bedrockEnv)
        #expect(options.backend == .bedrock(
            accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", sessionToken: "SESSIONTOKENEXAMPLE",
            region: "us-west-2", modelID: "anthropic.claude-3-5-sonnet-20241022-v2:0", endpoint: "http://127.0.0.1:9123"))
        #expect(options.backend.name == "bedrock")
    }

    @Test func bedrockChosenWithoutLLMBackend() throws {
        var env = Self.bedrockEnv
        env["LLM_BACKEND"] = nil
        env["AWS_SESSION_TOKEN"] = nil
        env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = nil
        env["AWS_REGION"] = nil
        env["AWS_DEFAULT_REGION"] = "eu-central-1"
        let options = try LLMAdapterOptions(environment: env)
        #expect(options.backend == .bedrock(
            accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", sessionToken: nil,
            region: "eu-central-1", modelID: "anthropic.claude-3-5-sonnet-20241022-v2:0", endpoint: nil))
    }

    @Test func bedrockEndpointPrecedence() throws {
        var env = Self.bedrockEnv
        env["AWS_ENDPOINT_URL"] = "http://generic.example:1"
        guard case .bedrock(_, _, _, _, _, let specific) = try LLMAdapterOptions(environment: env).backend else { Issue.record("not bedrock"); return }
        #expect(specific == "http://127.0.0.1:9123")
        env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = nil
        guard case .bedrock(_, _, _, _, _, let generic) = try LLMAdapterOptions(environment: env).backend else { Issue.record("not bedrock"); return }
        #expect(generic == "http://generic.example:1")
        env["AWS_ENDPOINT_URL"] = "not a url"
        #expect(Self.failure(env)?.contains("not a URL") == true)
    }

    @Test func anthropicKeyWinsOverBedrockWhenNothingIsChosen() throws {
        var env = Self.bedrockEnv
        env["LLM_BACKEND"] = nil
        env["ANTHROPIC_API_KEY"] = "k"
        #expect(try LLMAdapterOptions(environment: env).backend.name == "anthropic")
        // And an explicit choice wins over both.
        env["LLM_BACKEND"] = "Offline"
        #expect(try LLMAdapterOptions(environment: env).backend == .offline)
    }

    @Test func bedrockMissingEverything() throws {
        let message = try #require(Self.failure(["LLM_BACKEND": "bedrock"]))
        for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "BEDROCK_MODEL_ID", "AWS_REGION"] {
            #expect(message.contains(name), "\(name) missing from: \(message)")
        }
    }

    @Test(arguments: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "BEDROCK_MODEL_ID", "AWS_REGION"])
    func bedrockMissingOne(_ name: String) throws {
        var env = Self.bedrockEnv
        env[name] = nil
        let message = try #require(Self.failure(env))
        #expect(message.contains(name))
        for other in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "BEDROCK_MODEL_ID", "AWS_REGION"] where other != name {
            #expect(!message.contains(other), "\(other) is set but listed: \(message)")
        }
    }

    @Test func unknownBackend() throws {
        let message = try #require(Self.failure(["LLM_BACKEND": "gpt"]))
        #expect(message.contains("gpt"))
        #expect(message.contains("offline") && message.contains("anthropic") && message.contains("bedrock"))
    }

    @Test(arguments: [("LLM_PORT", "abc"), ("LLM_PORT", "70000"), ("LLM_PORT", "-1"), ("LLM_MAX_RETRIES", "11"), ("LLM_TIMEOUT", "0"),
                      ("LLM_MAX_BODY", "10")])
    func badNumbers(_ name: String, _ value: String) throws {
        let message = try #require(Self.failure([name: value]))
        #expect(message.contains(name))
        #expect(message.contains(value))
    }

    @Test func numbersAndHost() throws {
        let options = try LLMAdapterOptions(environment: [
            "LLM_PORT": "0", "LLM_HOST": "0.0.0.0", "LLM_MAX_RETRIES": "5", "LLM_TIMEOUT": "30", "LLM_MAX_BODY": "2048", "LLM_API_KEY": "client-key",
        ])
        #expect(options.port == 0)
        #expect(options.host == "0.0.0.0")
        #expect(options.maxRetries == 5)
        #expect(options.upstreamTimeout == .seconds(30))
        #expect(options.maxRequestBody == 2048)
        #expect(options.apiKey == "client-key")
    }

    @Test func descriptionNeverShowsSecrets() throws {
        let anthropic = try LLMAdapterOptions(environment: ["ANTHROPIC_API_KEY": "sk-ant-secret-123"]).backend
        #expect(!anthropic.description.contains("sk-ant-secret-123"))
        #expect(!"\(anthropic)".contains("sk-ant-secret-123"))
        #expect(anthropic.description.contains("https://api.anthropic.com"))

        let bedrock = try LLMAdapterOptions(environment: Self.bedrockEnv).backend
        for secret in ["AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "SESSIONTOKENEXAMPLE"] {
            #expect(!bedrock.description.contains(secret), "\(bedrock.description)")
            #expect(!"\(bedrock)".contains(secret))
        }
        #expect(bedrock.description.contains("us-west-2"))
        #expect(bedrock.description.contains("anthropic.claude-3-5-sonnet-20241022-v2:0"))
    }
}
