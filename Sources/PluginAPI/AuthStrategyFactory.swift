/// Creates strategies of one kind: an ID, a typed config and a constructor.
///
/// ```swift
/// struct StaticHeaderFactory: AuthStrategyFactory {
///     struct Config: Decodable, Sendable { var header: String; var value: Secret }
///     static let id = "static-header"
///     func validate(_ config: Config, in context: ValidationContext) throws(PluginConfigError) { … }
///     func makeStrategy(_ config: Config, context: StrategyContext) async throws -> any AuthStrategy { … }
/// }
/// ```
///
/// `Config` is decoded strictly from the connection's `auth` block minus `strategy`: an
/// unknown key is an error with its line and column, so declare every key you accept.
public protocol AuthStrategyFactory: Sendable {
    /// The parameters under `auth:`, without `strategy`.
    associatedtype Config: Decodable & Sendable

    /// The name used as `auth.strategy` in connections.yaml (`idjag`, `oauth-sts`, `none`).
    static var id: String { get }

    /// Pure checks (no I/O): references to other connections, kinds, value ranges.
    /// Throw ``PluginConfigError`` naming the offending key.
    func validate(_ config: Config, in context: ValidationContext) throws(PluginConfigError)

    /// What the strategy needs outside the gateway, for `switchboard doctor` to check live
    /// (pure: from the config alone). Default: nothing.
    func requirements(_ config: Config, in context: ValidationContext) -> StrategyRequirements

    /// Acquire what the strategy needs (keys, metadata URLs) and return it ready to serve.
    func makeStrategy(_ config: Config, context: StrategyContext) async throws -> any AuthStrategy
}

extension AuthStrategyFactory {
    public func validate(_ config: Config, in context: ValidationContext) throws(PluginConfigError) {}
    public func requirements(_ config: Config, in context: ValidationContext) -> StrategyRequirements { .none }
}
