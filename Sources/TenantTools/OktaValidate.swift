public import AsyncHTTPClient
import Foundation
import OAuthCore
public import PluginAPI

/// `switchboard okta validate`: every object the state file lists still exists and is active
/// (through the Management API), then `switchboard doctor` on connections.yaml with the
/// bootstrap env file's values — the same ✓/✗ lines.
public struct OktaValidate: Sendable {
    let client: OktaClient
    let statePath: String
    let envPath: String
    let configPath: String
    let plugins: PluginRegistry
    let http: HTTPClient

    public init(org: String, token: String, statePath: String, envPath: String, configPath: String, plugins: PluginRegistry, httpClient: HTTPClient) {
        self.client = OktaClient(org: org, token: token, httpClient: httpClient)
        self.statePath = statePath
        self.envPath = envPath
        self.configPath = configPath
        self.plugins = plugins
        self.http = httpClient
    }

    public func run() async -> [DoctorCheck] {
        var checks: [DoctorCheck] = []
        let state: OktaState
        do {
            guard let loaded = try OktaState.load(statePath) else {
                return [.fail("okta-state", "no state file at \(statePath)", fix: "run `switchboard okta bootstrap` first")]
            }
            state = loaded
        } catch {
            return [.fail("okta-state", "\(statePath) cannot be read", detail: "\(error)", fix: "move it away and run `switchboard okta bootstrap`")]
        }
        let agents = "/workload-principals/api/v1/ai-agents"
        var objects: [(String, String?, String)] = [
            ("authorization server", state.authorizationServerID.map { "/api/v1/authorizationServers/\($0)" }, "okta:authorization-server"),
            ("OIDC web app agent0", state.agent0AppID.map { "/api/v1/apps/\($0)" }, "okta:app-agent0"),
            ("AI agent", state.agentID.map { "\(agents)/\($0)" }, "okta:agent"),
        ]
        if let agent = state.agentID, let connection = state.connectionID {
            objects.append(("managed connection", "\(agents)/\(agent)/connections/\(connection)", "okta:connection"))
        }
        if let agent = state.agentID, let connection = state.githubConnectionID {
            objects.append(("managed connection (STS)", "\(agents)/\(agent)/connections/\(connection)", "okta:sts-connection"))
        }
        if let server = state.authorizationServerID, let policy = state.policyID {
            objects.append(("access policy", "/api/v1/authorizationServers/\(server)/policies/\(policy)", "okta:policy"))
        }
        for (what, path, id) in objects {
            guard let path else {
                checks.append(.fail(id, "the state file records no \(what)", fix: "run `switchboard okta bootstrap` again"))
                continue
            }
            do {
                guard let object = try await client.find(path, what: what) else {
                    checks.append(.fail(id, "\(what) \(path.split(separator: "/").last ?? "") no longer exists", fix: "run `switchboard okta bootstrap` again to recreate it"))
                    continue
                }
                let status = object["status"]?.string ?? "ACTIVE"
                if status == "ACTIVE" {
                    checks.append(.pass(id, "\(what) \(object["id"]?.string ?? "") exists and is ACTIVE"))
                } else {
                    checks.append(.fail(id, "\(what) \(object["id"]?.string ?? "") is \(status)", fix: "activate it, or run `switchboard okta bootstrap` again"))
                }
            } catch {
                checks.append(.fail(id, "\(what) could not be read", detail: "\(error)", fix: "check --org and the API token"))
            }
        }
        // The key file's public key is one the agent has registered (by RFC 7638 thumbprint).
        if let agentID = state.agentID, let keyFile = state.agentKeyFile {
            if let pem = try? String(contentsOfFile: keyFile, encoding: .utf8), let key = try? SigningKey(pem: pem, kid: state.agentKeyID ?? "") {
                let thumbprint = key.thumbprint
                do {
                    let registered = try await client.call(.GET, "\(agents)/\(agentID)/credentials/jwks", what: "the AI agent's keys").items
                    let prints = registered.map { jwk in
                        jwkThumbprint(Dictionary(uniqueKeysWithValues: ["kty", "n", "e", "crv", "x", "y"].compactMap { name in jwk[name]?.string.map { (name, $0) } }))
                    }
                    if prints.contains(thumbprint) {
                        checks.append(.pass("okta:agent-key", "\(keyFile) is a key registered for agent \(agentID) (thumbprint \(thumbprint))"))
                    } else {
                        checks.append(.fail("okta:agent-key", "\(keyFile) is not among the keys registered for agent \(agentID)",
                                            detail: "registered thumbprints: \(prints.isEmpty ? "none" : prints.joined(separator: ", "))",
                                            fix: "register its public key (thumbprint \(thumbprint)) on the agent, or run `switchboard okta bootstrap` again"))
                    }
                } catch {
                    checks.append(.fail("okta:agent-key", "the agent's registered keys could not be read", detail: "\(error)", fix: "check --org and the API token"))
                }
            } else {
                checks.append(.fail("okta:agent-key", "\(keyFile) is not a usable private key", fix: "run `switchboard okta bootstrap` again (it makes a new key and registers it)"))
            }
        }
        var environment = ProcessInfo.processInfo.environment
        for (name, value) in Self.readEnvFile(envPath) { environment[name] = value }
        checks += await Doctor(configPath: configPath, plugins: plugins, environment: environment, httpClient: http).run()
        return checks
    }

    /// `NAME=value` lines as bootstrap writes them (single-quoted values unquoted; # comments).
    public static func readEnvFile(_ path: String) -> [(String, String)] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), let eq = line.firstIndex(of: "=") else { return nil }
            var value = String(line[line.index(after: eq)...])
            if value.hasPrefix("'"), value.hasSuffix("'"), value.count >= 2 {
                value = String(value.dropFirst().dropLast()).replacingOccurrences(of: "'\\''", with: "'")
            }
            return (String(line[..<eq]), value)
        }
    }
}
