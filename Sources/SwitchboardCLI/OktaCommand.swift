import ArgumentParser
import Foundation
import StandardPlugins
import TenantTools

/// `switchboard okta bootstrap | validate | rollback`: an Okta org (or the development IdP)
/// set up, checked and torn down through its Management API (TenantTools).
struct OktaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "okta",
        abstract: "Set up, check or remove what Switchboard needs at an Okta org (or the development IdP) through the Management API.",
        subcommands: [Bootstrap.self, Validate.self, Rollback.self]
    )

    struct Org: ParsableArguments {
        @Option(help: "The org URL: https://{yourOktaDomain} (or the development IdP, http://127.0.0.1:9000).") var org: String
        @Option(help: "A file holding the API token (SSWS). Default: OKTA_API_TOKEN.") var tokenFile: String?
        @Option(help: "Where the ids of what was created are kept.") var state = ".switchboard/okta-state.json"

        func token() throws -> String {
            if let tokenFile {
                guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else { throw ValidationError("cannot read --token-file \(tokenFile)") }
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard let token = ProcessInfo.processInfo.environment["OKTA_API_TOKEN"], !token.isEmpty else {
                throw ValidationError("give the API token with --token-file or OKTA_API_TOKEN")
            }
            return token
        }
    }

    struct Bootstrap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create (or reuse) the authorization server, apps, agent, key, connection, policy and trusted origins; write the env file.")
        @OptionGroup var org: Org
        @Option(help: "The env file written for connections.yaml and agent0 (mode 600).") var env = ".switchboard/okta.env"
        @Option(help: "The agent's private key file (mode 600).") var key = ".switchboard/okta-agent-key.pem"
        @Option(help: "The authorization server's name.") var authorizationServer = "todo-mcp"
        @Option(help: "todo0's resource indicator (the server's audience).") var resource = "http://127.0.0.1:5002/mcp"
        @Option(help: "agent0's base URL (redirect URIs, trusted origin).") var agent0URL = "http://127.0.0.1:3000"
        @Option(help: "todo0's web base URL: also create its OIDC app.") var todo0URL: String?
        @Option(help: "Access-token lifetime in minutes.") var tokenLifetime = 60
        @Option(help: "Assign the apps to this group (by name) instead of the token's user.") var group: String?
        @Option(help: ArgumentHelp(
            "Also connect the agent through OAuth STS to this app's resource server connector (its name or id, e.g. GitHub): the oauth-sts connections' resource.",
            discussion: "The app and its connector (your GitHub OAuth app's client id and secret) are set up in the Admin Console first; Okta's API has no call for them."
        )) var githubApp: String?

        func run() async throws {
            var options = OktaBootstrap.Options(org: org.org, token: try org.token())
            options.statePath = org.state
            options.envPath = env
            options.keyPath = key
            options.authorizationServerName = authorizationServer
            options.resource = resource
            options.agent0URL = agent0URL
            options.todo0URL = todo0URL
            options.tokenLifetimeMinutes = tokenLifetime
            options.group = group
            options.githubApp = githubApp
            do {
                let steps = try await TenantHTTP.with { try await OktaBootstrap(options: options, httpClient: $0).run() }
                for step in steps { print("\(step.created ? "created" : "exists ")  \(step.object)  \(step.id)") }
                let made = steps.filter(\.created).count
                print("\n\(made) object\(made == 1 ? "" : "s") created, \(steps.count - made) already there. Values written to \(env) (mode 600):")
                print("  set -a; . \(env); set +a   # then start the gateway and agent0 in that shell, and run `switchboard doctor`")
            } catch {
                FileHandle.standardError.write(Data("bootstrap failed: \(error)\n\(org.state) lists what exists; `switchboard okta rollback` removes it.\n".utf8))
                throw ExitCode(1)
            }
        }
    }

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check the objects bootstrap created, then run doctor with its env file. Exit 0 only when all pass.")
        @OptionGroup var org: Org
        @Option(help: "The env file bootstrap wrote.") var env = ".switchboard/okta.env"
        @Option(help: "connections.yaml (default: SWITCHBOARD_CONFIG or connections.yaml).") var config: String?
        @Flag(help: "One JSON object: {ok, checks}.") var json = false

        func run() async throws {
            let path = config ?? ProcessInfo.processInfo.environment["SWITCHBOARD_CONFIG"] ?? "connections.yaml"
            let token = try org.token()
            let checks = await TenantHTTP.with {
                await OktaValidate(org: org.org, token: token, statePath: org.state, envPath: env, configPath: path, plugins: StandardPlugins.registry(), httpClient: $0).run()
            }
            try DoctorCommand.report(checks, json: json)
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete what the state file lists, in reverse order (asks first unless --yes).")
        @OptionGroup var org: Org
        @Flag(help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            guard let state = try OktaState.load(org.state) else {
                FileHandle.standardError.write(Data("no state file at \(org.state): nothing to roll back\n".utf8))
                throw ExitCode(1)
            }
            let token = try org.token()
            if !yes {
                print("This deletes from \(state.org):")
                for (what, id) in OktaRollback.plan(state) { print("  \(what)  \(id)") }
                print("Type 'yes' to go on: ", terminator: "")
                guard readLine()?.trimmingCharacters(in: .whitespaces).lowercased() == "yes" else {
                    print("nothing deleted")
                    throw ExitCode(1)
                }
            }
            let outcomes = try await TenantHTTP.with { try await OktaRollback(org: org.org, token: token, statePath: org.state, httpClient: $0).run() }
            for o in outcomes { print("\(o.result.rawValue)  \(o.object)  \(o.id)\(o.detail.map { "  (\($0))" } ?? "")") }
            if outcomes.contains(where: { $0.result == .failed }) { throw ExitCode(1) }
        }
    }
}
