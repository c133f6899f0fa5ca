public import AsyncHTTPClient
public import Foundation
import Gateway
public import NIOCore
import OAuthCore
import SwitchboardJSON
public import PluginAPI

/// `switchboard doctor`: live checks of a connections.yaml against the services it names — for
/// any issuer, the development IdP or an Okta org. Each check is one line, ✓ or ✗ with the fix;
/// a check that cannot run because one it builds on failed says so and counts as not passed.
///
/// No user is needed: that the agent's key is accepted is proven by a token exchange with a
/// deliberately invalid subject token, which must fail with `invalid_grant` (the client was
/// authenticated, the token was not) and not with `invalid_client`.
public struct Doctor: Sendable {
    public var configPath: String
    public var plugins: PluginRegistry
    public var environment: [String: String]
    let http: HTTPClient
    let timeout: TimeAmount

    public init(configPath: String, plugins: PluginRegistry, environment: [String: String] = ProcessInfo.processInfo.environment,
                httpClient: HTTPClient, timeout: TimeAmount = .seconds(5)) {
        self.configPath = configPath
        self.plugins = plugins
        self.environment = environment
        self.http = httpClient
        self.timeout = timeout
    }

    /// Every check, in order. All passed: `allSatisfy { $0.status == .pass }`.
    public func run() async -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        let plan: RegistryPlan
        do {
            plan = try RegistryLoader(plugins: plugins, environment: environment).load(path: configPath)
            checks.append(.pass("config", "\(configPath) is valid (\(plan.connections.count) connections)"))
        } catch {
            checks.append(.fail("config", "\(configPath) is not valid", detail: error.description,
                                fix: "correct the lines named above (`switchboard validate \(configPath)` says the same)"))
            return checks
        }

        // The users' issuer: discovery and keys.
        let issuer = plan.users.issuer
        var discovered: [String: JSONValue]?
        do {
            let doc = try await getJSON(Self.trimmed(issuer) + "/.well-known/openid-configuration")
            guard Self.trimmed(doc["issuer"]?.string ?? "") == Self.trimmed(issuer) else {
                throw DoctorFailure("its discovery document names issuer '\(doc["issuer"]?.string ?? "")'")
            }
            guard let jwksURI = doc["jwks_uri"]?.string else { throw DoctorFailure("its discovery document has no jwks_uri") }
            let jwks = try await getJSON(jwksURI)
            guard let keys = jwks["keys"]?.array, !keys.isEmpty else { throw DoctorFailure("\(jwksURI) lists no key") }
            discovered = doc
            checks.append(.pass("issuer", "users' issuer \(issuer): discovery and JWKS (\(keys.count) key\(keys.count == 1 ? "" : "s")) reachable"))
        } catch {
            checks.append(.fail("issuer", "users' issuer \(issuer) is not usable", detail: "\(error)",
                                fix: "set users.issuer to the issuer your ID tokens carry (Okta: https://{domain} for the org server) and check the gateway can reach it"))
        }

        // The agent's key: loads, and the org's token endpoint accepts assertions signed with it.
        let requirements = plan.connections.compactMap { c in plan.requirements(of: c).map { (c, $0) } }
        let key: SigningKey?
        if let agent = plan.agent, let pem = agent.privateKey?.reveal() {
            key = try? SigningKey(pem: pem, kid: agent.keyID)
            if key == nil {
                checks.append(.fail("agent-key", "agent.private_key is not a usable key", detail: "not an RSA (≥ 2048 bits) or P-256 private key in PEM",
                                    fix: "point agent.private_key at the PEM file bootstrap or `switchboard idp --init-agent` wrote"))
            }
        } else {
            key = nil
        }
        let orgEndpoints = Set(requirements.filter { $0.1.exchangesAtOrg }.map { $0.1.orgTokenEndpoint ?? "" })
        for configured in orgEndpoints.sorted() {
            // One id per endpoint when a plugin names its own token endpoint besides the issuer's.
            let checkID = orgEndpoints.count == 1 || configured.isEmpty ? "agent-key" : "agent-key:\(configured)"
            guard let agent = plan.agent, let key else {
                if plan.agent == nil {
                    checks.append(.fail(checkID, "no agent identity", fix: "add 'agent: {id, key_id, private_key: file:…}' to \(configPath)"))
                }
                continue
            }
            let endpoint = configured.isEmpty ? discovered?["token_endpoint"]?.string : configured
            guard let endpoint else {
                checks.append(.skipped(checkID, "the agent's key at the org token endpoint", because: "the issuer's discovery failed"))
                continue
            }
            let thumbprint = key.thumbprint
            let form: [(String, String)] = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                ("requested_token_type", "urn:ietf:params:oauth:token-type:id-jag"),
                ("subject_token", Self.invalidSubjectToken),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"),
                ("audience", Self.trimmed(issuer)),
            ]
            checks.append(await assertion(
                id: checkID, endpoint: endpoint, form: form, agent: agent, key: key,
                passed: "agent '\(agent.id)' (key \(agent.keyID), thumbprint \(thumbprint)) is accepted by \(endpoint)",
                fix: "register this public key (thumbprint \(thumbprint)) for agent '\(agent.id)' — in Okta, the AI agent's credentials; on the development IdP, `switchboard idp --init-agent` — or, if it is registered, set agent.key_id to the kid it is registered under"))
        }

        // Each authorization server a strategy gets tokens from.
        var serverScopes: [String: Set<String>] = [:]
        let servers = Set(requirements.compactMap { $0.1.authorizationServer })
        for name in servers.sorted() {
            guard let server = plan.connections.first(where: { $0.descriptor.name == name })?.descriptor, let asIssuer = server.issuer else { continue }
            let url = Self.trimmed(asIssuer) + "/.well-known/oauth-authorization-server"
            do {
                let doc = try await getJSON(url)
                guard Self.trimmed(doc["issuer"]?.string ?? "") == Self.trimmed(asIssuer) else {
                    throw DoctorFailure("\(url) names issuer '\(doc["issuer"]?.string ?? "")'")
                }
                let grants = doc["grant_types_supported"]?.array?.compactMap(\.string) ?? []
                guard grants.contains("urn:ietf:params:oauth:grant-type:jwt-bearer") else {
                    checks.append(.fail("as:\(name)", "authorization server '\(name)' does not advertise the JWT-bearer grant",
                                        detail: "grant_types_supported: \(grants.joined(separator: ", "))",
                                        fix: "allow the JWT Bearer grant in an access policy rule of \(asIssuer) for agent '\(plan.agent?.id ?? "")'"))
                    continue
                }
                serverScopes[name] = Set(doc["scopes_supported"]?.array?.compactMap(\.string) ?? [])
                checks.append(.pass("as:\(name)", "authorization server '\(name)' (\(asIssuer)): metadata reachable, JWT-bearer grant advertised"))
            } catch {
                checks.append(.fail("as:\(name)", "authorization server '\(name)' metadata not reachable", detail: "\(error)",
                                    fix: "check issuer: of connection '\(name)' (Okta: https://{domain}/oauth2/{authorization server id})"))
            }
        }

        // Per connection: the scopes it asks for exist; its protected resource names its server.
        for (connection, needs) in requirements {
            let name = connection.descriptor.name
            if let server = needs.authorizationServer, !needs.scopes.isEmpty {
                if let known = serverScopes[server] {
                    let missing = needs.scopes.filter { !known.contains($0) }
                    if missing.isEmpty {
                        checks.append(.pass("scopes:\(name)", "'\(name)': scopes \(needs.scopes.joined(separator: " ")) exist on '\(server)'"))
                    } else {
                        checks.append(.fail("scopes:\(name)", "'\(name)' asks for scopes '\(server)' does not offer: \(missing.joined(separator: ", "))",
                                            detail: "scopes_supported: \(known.sorted().joined(separator: ", "))",
                                            fix: "add the scope\(missing.count == 1 ? "" : "s") to the authorization server, or remove \(missing.count == 1 ? "it" : "them") from auth.scopes of '\(name)'"))
                    }
                } else {
                    checks.append(.skipped("scopes:\(name)", "'\(name)': scopes on '\(server)'", because: "the authorization server's metadata check failed"))
                }
            }
            if let resource = needs.protectedResource, let upstream = connection.descriptor.upstream {
                checks += await protectedResource(name: name, upstream: upstream, resource: resource, needs: needs, plan: plan)
            }
        }
        return checks
    }

    /// RFC 9728: the upstream's metadata names the connection's authorization server, and its
    /// `resource` is the connection's resource indicator (what the tokens' `aud` will be).
    private func protectedResource(name: String, upstream: String, resource: String, needs: StrategyRequirements, plan: RegistryPlan) async -> [DoctorCheck] {
        guard let url = URL(string: upstream), let scheme = url.scheme, let host = url.host else { return [] }
        let origin = "\(scheme)://\(host)" + (url.port.map { ":\($0)" } ?? "")
        let path = url.path == "/" ? "" : url.path
        var doc: [String: JSONValue]?
        var lastError: (any Error)?
        for candidate in [origin + "/.well-known/oauth-protected-resource" + path, origin + "/.well-known/oauth-protected-resource"] {
            do {
                doc = try await getJSON(candidate)
                break
            } catch {
                lastError = error
            }
        }
        guard let doc else {
            return [.fail("resource:\(name)", "'\(name)': no protected-resource metadata at \(origin)", detail: lastError.map { "\($0)" },
                          fix: "the MCP server must publish /.well-known/oauth-protected-resource (RFC 9728); check upstream: of '\(name)'")]
        }
        var checks: [DoctorCheck] = []
        let published = doc["resource"]?.string ?? ""
        if published == resource {
            checks.append(.pass("resource:\(name)", "'\(name)': the server's resource is the connection's resource indicator (\(resource))"))
        } else {
            checks.append(.fail("resource:\(name)", "'\(name)': the server's resource is '\(published)', the connection asks for '\(resource)'",
                                fix: "set resource: of '\(name)' to \(published) (the aud its access tokens must carry), or correct the server's configured resource"))
        }
        if let server = needs.authorizationServer, let asIssuer = plan.connections.first(where: { $0.descriptor.name == server })?.descriptor.issuer {
            let named = doc["authorization_servers"]?.array?.compactMap(\.string) ?? []
            if named.map(Self.trimmed).contains(Self.trimmed(asIssuer)) {
                checks.append(.pass("resource-as:\(name)", "'\(name)': the server names authorization server '\(server)'"))
            } else {
                checks.append(.fail("resource-as:\(name)", "'\(name)': the server trusts \(named.isEmpty ? "no authorization server" : named.joined(separator: ", ")), not '\(server)' (\(asIssuer))",
                                    fix: "point auth.authorization_server of '\(name)' at the server the MCP server trusts, or configure the MCP server with \(asIssuer)"))
            }
        }
        return checks
    }

    /// A token request that must fail with `invalid_grant` — the client authenticated, the grant not.
    private func assertion(id: String, endpoint: String, form: [(String, String)], agent: AgentIdentity, key: SigningKey, passed: String, fix: String) async -> DoctorCheck {
        do {
            let fields = form + (try ClientAssertion.formFields(clientID: agent.id, tokenEndpoint: endpoint, key: key))
            _ = try await TokenEndpointClient(httpClient: http, timeout: timeout).request(endpoint, form: fields)
            return .fail(id, "\(endpoint) accepted a deliberately invalid subject token", fix: "this token endpoint does not verify subject tokens: do not use it")
        } catch let error as TokenEndpointError {
            switch error {
            case .oauth(_, "invalid_grant", _, _): return .pass(id, passed)
            case .oauth(_, "invalid_client", let description, _), .oauth(_, "unauthorized_client", let description, _):
                return .fail(id, "\(endpoint) does not accept agent '\(agent.id)' with key '\(agent.keyID)'", detail: description, fix: fix)
            default:
                return .fail(id, "\(endpoint) refused the agent's request", detail: error.description, fix: fix)
            }
        } catch {
            return .fail(id, "the agent's client assertion could not be made", detail: "\(error)", fix: fix)
        }
    }

    private func getJSON(_ url: String) async throws -> [String: JSONValue] {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: timeout)
        } catch {
            throw DoctorFailure("\(url) is not reachable: \(error)")
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else { throw DoctorFailure("\(url) answered \(response.status.code)") }
        guard case .object(let object)? = JSONValue.parse(body.readableBytesView) else {
            throw DoctorFailure("\(url) did not answer a JSON object")
        }
        return object
    }

    static func trimmed(_ url: String) -> String { url.hasSuffix("/") ? String(url.dropLast()) : url }

    /// Shaped like a JWT so that an endpoint reads it as one, and signed by no one.
    static let invalidSubjectToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJkb2N0b3IifQ.aW52YWxpZA"
}

/// One line of doctor's report.
public struct DoctorCheck: Sendable, Encodable, Equatable {
    public enum Status: String, Sendable, Encodable { case pass, fail, skipped }
    /// Stable, for machines and tests: `config`, `issuer`, `agent-key`, `as:{name}`,
    /// `scopes:{connection}`, `resource:{connection}`, `resource-as:{connection}`.
    public var id: String
    public var status: Status
    public var title: String
    public var detail: String?
    public var fix: String?

    static func pass(_ id: String, _ title: String) -> DoctorCheck { DoctorCheck(id: id, status: .pass, title: title) }
    static func fail(_ id: String, _ title: String, detail: String? = nil, fix: String) -> DoctorCheck {
        DoctorCheck(id: id, status: .fail, title: title, detail: detail, fix: fix)
    }
    static func skipped(_ id: String, _ title: String, because: String) -> DoctorCheck {
        DoctorCheck(id: id, status: .skipped, title: title, detail: "not checked: \(because)")
    }

    /// `✓ title`, or `✗ title` with its detail and fix on the lines below.
    public var rendered: String {
        switch status {
        case .pass: return "✓ \(title)"
        case .skipped: return "– \(title) (\(detail ?? "not checked"))"
        case .fail:
            var lines = ["✗ \(title)"]
            if let detail { lines.append("    " + detail.replacingOccurrences(of: "\n", with: "\n    ")) }
            if let fix { lines.append("    fix: \(fix)") }
            return lines.joined(separator: "\n")
        }
    }
}

struct DoctorFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
