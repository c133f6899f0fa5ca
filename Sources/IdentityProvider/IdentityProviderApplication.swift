import Foundation
public import Hummingbird
public import Logging
import OAuthCore

/// Everything `switchboard idp` needs. The CLI and the tests build the same one.
public struct IdentityProviderOptions: Sendable {
    public var host: String = "127.0.0.1"
    /// 0 picks a free port (tests); the issuer then follows the bound port unless `issuer` is set.
    public var port: Int = 9000
    /// The issuer URL; default `http://{host}:{port}`.
    public var issuer: String?
    /// Keys, grants and consents live here (`idp.sqlite`).
    public var dataDirectory: String = ".switchboard"
    /// idp.yaml; nil uses the embedded development defaults.
    public var configPath: String?
    /// A directory given as a value (wins over `configPath`), e.g. `IdPConfig.development(…)` on other ports.
    public var config: IdPConfig?
    public var logger: Logger = Logger(label: "switchboard.idp")
    public var onServerRunning: (@Sendable (Int) async -> Void)?

    public init() {}
}

/// Reads the IdP configuration: the file if given, else the embedded development defaults.
public func loadIdentityProviderConfig(_ path: String?) throws -> IdPConfig {
    guard let path else { return .developmentDefaults }
    return try IdPConfig.parse(try String(contentsOfFile: path, encoding: .utf8))
}

/// Builds the identity provider. With port 0 and no explicit issuer, the issuer becomes
/// `http://{host}:{bound port}` once the server listens.
public func buildIdentityProviderApplication(_ options: IdentityProviderOptions) async throws -> some ApplicationProtocol {
    let config = try options.config ?? loadIdentityProviderConfig(options.configPath)
    let issuer = options.issuer ?? "http://\(options.host):\(options.port)"
    let idp = try await IdentityProvider.open(config: config, issuer: issuer, dataDirectory: options.dataDirectory, logger: options.logger)
    let router = Router(context: BasicRequestContext.self)
    // Each request continues the caller's trace (a no-op without a tracer); no OAuth secret from a query in a span.
    router.add(middleware: TracingMiddleware(redactingQueryParameters: SecretParameters.query))
    IdPRoutes(idp: idp).register(on: router)
    ManagementAPI(idp: idp).register(on: router)
    let logger = options.logger
    let onRunning = options.onServerRunning
    // Where the Management API's token is, never the token.
    logger.notice("Management API (Authorization: SSWS …): token \(config.managementAPIToken == nil ? "in " + options.dataDirectory + "/management-api-token" : "from the configuration")")
    if options.configPath == nil || options.config != nil {
        // Names only: no password is logged, not even the embedded defaults' (README lists them).
        logger.notice("development users (embedded defaults; passwords in the README): \(config.users.map(\.username).joined(separator: ", "))")
    }
    return Application(
        responder: JSONNotFoundResponder(router: router.buildResponder()),
        configuration: .init(address: .hostname(options.host, port: options.port), serverName: "switchboard-idp"),
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? options.port
            if options.issuer == nil, options.port == 0 { idp.bind(issuer: "http://\(options.host):\(port)") }
            logger.info("identity provider listening", metadata: ["issuer": "\(idp.issuer)"])
            await onRunning?(port)
        },
        logger: logger)
}

/// `switchboard idp --init-agent`: creates the agent's key pair, registers the public key in
/// the IdP's database and writes the private key (mode 600). Returns a one-line summary.
public func initializeAgent(options: IdentityProviderOptions, agentID: String, keyID: String, privateKeyPath: String) async throws -> String {
    let config = try options.config ?? loadIdentityProviderConfig(options.configPath)
    let idp = try await IdentityProvider.open(
        config: config, issuer: options.issuer ?? "http://\(options.host):\(options.port)", dataDirectory: options.dataDirectory, logger: options.logger)
    try idp.initAgent(agentID: agentID, keyID: keyID, privateKeyPath: privateKeyPath)
    return "registered key '\(keyID)' for agent '\(agentID)'; private key written to \(privateKeyPath) (mode 600)"
}

/// Turns the router's empty 404 (unknown path, or a known path with another method) into
/// an RFC 6749-style JSON error, like every other error the IdP sends.
struct JSONNotFoundResponder: HTTPResponder {
    let router: RouterResponder<BasicRequestContext>

    func respond(to request: Request, context: BasicRequestContext) async throws -> Response {
        let response = try await router.respond(to: request, context: context)
        if response.status == .notFound, response.body.contentLength == 0 {
            // The Management API's paths answer in Okta's error shape.
            if request.uri.path.hasPrefix("/api/v1/") || request.uri.path.hasPrefix(ManagementAPI.agentsPath) || request.uri.path.hasPrefix("/workload-principals/") {
                return ManagementAPI.Failure(status: .notFound, code: "E0000008", summary: "The requested path was not found").response
            }
            return OAuthError(error: "not_found", description: "no such endpoint, or not with method \(request.method.rawValue)", status: .notFound).response()
        }
        return response
    }
}
