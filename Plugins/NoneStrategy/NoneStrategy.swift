public import PluginAPI

/// The `none` strategy: forwards without any credential (the upstream is open, or protected
/// by the network). The caller is still verified by the gateway; only nothing is injected.
public struct NoneStrategyFactory: AuthStrategyFactory {
    /// `none` takes no parameters: any key under `auth:` besides `strategy` is an error.
    public struct Config: Decodable, Sendable {
        public init(from decoder: any Decoder) throws {
            _ = try decoder.container(keyedBy: NoKeys.self)
        }
        private enum NoKeys: CodingKey {}
    }

    public static let id = "none"

    public init() {}

    public func makeStrategy(_ config: Config, context: StrategyContext) async throws -> any AuthStrategy {
        NoneStrategy()
    }
}

/// Injects nothing; never expires.
struct NoneStrategy: AuthStrategy {
    var credentialScope: CredentialScope { .uncached }
    var fixedCredential: Credential? { Credential() }

    func credential(for request: CredentialRequest, context: StrategyContext) async -> CredentialOutcome {
        .inject(Credential())
    }
}
