import Foundation
import Logging
import OAuthCore
import Synchronization

/// The identity provider's state and flows, independent of HTTP: the routes call into it.
final class IdentityProvider: Sendable {
    /// The directory of the file (or the embedded defaults).
    let base: IdPConfig
    /// What the Management API created (``TenantObjects``), and the directory with its active
    /// objects added: every flow reads ``config``, so a created object takes effect at once.
    let tenant: TenantObjects
    private let directory: Mutex<IdPConfig>
    var config: IdPConfig { directory.withLock { $0 } }
    /// The Management API's SSWS token (from idp.yaml, or generated into the data directory).
    let managementToken: String
    private let issuerURL: Mutex<String>
    /// The issuer URL (fixed once the server is bound when it listens on port 0).
    var issuer: String { issuerURL.withLock { $0 } }
    let store: IdPStore
    let org: KeyRing
    /// Signing keys per custom authorization server, loaded when a server first needs them (one
    /// created through the Management API gets its keys then).
    private let asRings: Mutex<[String: KeyRing]>
    let appRings: [String: KeyRing]
    let logger: Logger

    static let idTokenLifetime: TimeInterval = 3600
    static let idJAGLifetime: TimeInterval = 300
    static let codeLifetime: TimeInterval = 60
    static let sessionLifetime: TimeInterval = 8 * 3600
    static let interactionLifetime: TimeInterval = 600
    static let skew: TimeInterval = 60

    var tokenEndpoint: String { issuer + "/oauth2/v1/token" }
    func asIssuer(_ id: String) -> String { issuer + "/oauth2/" + id }
    func asTokenEndpoint(_ id: String) -> String { asIssuer(id) + "/v1/token" }
    func appIssuer(_ id: String) -> String { issuer + "/apps/" + id }

    private init(
        config: IdPConfig, tenant: TenantObjects, managementToken: String, issuer: String, store: IdPStore, org: KeyRing, asRings: [String: KeyRing],
        appRings: [String: KeyRing], logger: Logger
    ) {
        self.base = config
        self.tenant = tenant
        self.directory = Mutex(tenant.effective(over: config))
        self.managementToken = managementToken
        self.issuerURL = Mutex(issuer)
        self.store = store
        self.org = org
        self.asRings = Mutex(asRings)
        self.appRings = appRings
        self.logger = logger
    }

    /// Opens (or creates) the data directory's database and keys.
    static func open(config: IdPConfig, issuer: String, dataDirectory: String, logger: Logger) async throws -> IdentityProvider {
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let store = try IdPStore(path: dataDirectory + "/idp.sqlite")
        let org = try await KeyRing.load(owner: "org", store: store)
        var asRings: [String: KeyRing] = [:]
        for s in config.authorizationServers { asRings[s.id] = try await KeyRing.load(owner: "as:\(s.id)", store: store) }
        var appRings: [String: KeyRing] = [:]
        for a in config.thirdPartyApps { appRings[a.id] = try await KeyRing.load(owner: "app:\(a.id)", store: store) }
        let trimmed = issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer
        let token = try config.managementAPIToken ?? Self.managementToken(dataDirectory: dataDirectory)
        return IdentityProvider(
            config: config, tenant: try TenantObjects(store: store), managementToken: token, issuer: trimmed, store: store, org: org, asRings: asRings,
            appRings: appRings, logger: logger)
    }

    /// The data directory's Management API token, created (mode 600) when absent.
    static func managementToken(dataDirectory: String) throws -> String {
        let path = dataDirectory + "/management-api-token"
        if let text = try? String(contentsOfFile: path, encoding: .utf8), !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let token = "00" + RandomToken.make(bytes: 30)
        do { try writePrivateFile(Data((token + "\n").utf8), to: path) } catch { throw IdPSetupError("\(error)") }
        return token
    }

    /// Re-derives the directory after the Management API changed an object.
    func tenantChanged() {
        let fresh = tenant.effective(over: base)
        directory.withLock { $0 = fresh }
    }

    /// The signing keys of custom authorization server `id`, when it exists.
    func asRing(_ id: String) async throws -> KeyRing? {
        if let ring = asRings.withLock({ $0[id] }) { return ring }
        guard config.authorizationServer(id) != nil else { return nil }
        let ring = try await KeyRing.load(owner: "as:\(id)", store: store)
        return asRings.withLock { rings in
            if let raced = rings[id] { return raced }
            rings[id] = ring
            return ring
        }
    }

    /// The public keys an agent authenticates with: those registered by `--init-agent`
    /// plus any in the config file.
    func agentKeySet(_ agent: IdPConfig.Agent) async throws -> StaticKeySet {
        var keys: [[String: String]] = agent.jwks ?? []
        for json in try store.agentJWKs(clientID: agent.clientID) {
            if let jwk = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String] { keys.append(jwk) }
        }
        return try await StaticKeySet(jwksJSON: jwksJSON(keys))
    }

    /// Creates a key pair for `agentID`, registers its public key and writes the private key
    /// (PEM, mode 600) to `privateKeyPath`. Returns the key id.
    @discardableResult
    func initAgent(agentID: String, keyID: String, privateKeyPath: String) throws -> String {
        guard config.agent(agentID) != nil else { throw IdPSetupError("no agent '\(agentID)' in the IdP configuration") }
        let key = try SigningKey.generateRSA(kid: keyID)
        do { try key.writePrivateKey(to: privateKeyPath) } catch { throw IdPSetupError("\(error)") }
        let jwk = String(decoding: try JSONSerialization.data(withJSONObject: key.publicJWK, options: [.sortedKeys]), as: UTF8.self)
        try store.registerAgentKey(clientID: agentID, kid: keyID, jwk: jwk)
        return keyID
    }

    /// Verifies an ID token this IdP issued to one of `audiences`.
    func verifyIDToken(_ token: String, audiences: Set<String>) async throws(OAuthError) -> JWTClaims {
        // OIDC's audience rules too: a token also meant for a client the agent does not act for is refused.
        let verifier = JWTVerifier(policy: .idToken(issuer: issuer, clientIDs: audiences), keySet: org.keySet)
        do {
            return try await verifier.verify(token)
        } catch {
            throw OAuthError.invalidGrant("the subject token was rejected: \(error.message)")
        }
    }

    func now() -> Date { Date() }

    /// Sets the issuer once the bound port is known (port 0).
    func bind(issuer: String) { issuerURL.withLock { $0 = issuer } }
}
