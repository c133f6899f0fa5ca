import ArgumentParser
import Foundation
import Todo0

/// `switchboard todo0`: the MCP server for per-user todos (and its REST API).
struct Todo0Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "todo0",
        abstract: "Run todo0: MCP Streamable HTTP on :5002/mcp and REST on :5001, per-user todos in SQLite.",
        discussion: "Environment: TODO0_HOST, TODO0_PORT, TODO0_REST_PORT, MCP_AUTHORIZATION_SERVER, TODO0_RESOURCE, SWITCHBOARD_DATA_DIR, LOG_LEVEL. Flags win."
    )

    @Option(help: "Address to listen on (env TODO0_HOST).") var host: String?
    @Option(help: "MCP port (env TODO0_PORT).") var port: Int?
    @Option(help: "REST port (env TODO0_REST_PORT).") var restPort: Int?
    @Option(help: "Data directory for todo0.sqlite (env SWITCHBOARD_DATA_DIR).") var dataDir: String?
    @Option(help: "Issuer of the authorization server whose tokens are accepted (env MCP_AUTHORIZATION_SERVER).") var authorizationServer: String?
    @Option(help: "This server's resource indicator, the aud of its tokens (env TODO0_RESOURCE; default http://HOST:PORT/mcp).") var resource: String?
    @Flag(help: "Answer with SSE streams instead of JSON when the client accepts both.") var sse = false

    func run() async throws {
        let options = Self.options(host: host, port: port, restPort: restPort, dataDir: dataDir, authorizationServer: authorizationServer, resource: resource, sse: sse)
        let tracing = CLITracing.start(service: "switchboard-todo0", logger: options.logger)
        try await CLITracing.run(try await buildTodo0(options), tracing: tracing, logger: options.logger)
    }

    static func options(host: String? = nil, port: Int? = nil, restPort: Int? = nil, dataDir: String? = nil, authorizationServer: String? = nil, resource: String? = nil, sse: Bool = false) -> Todo0Options {
        let env = ProcessInfo.processInfo.environment
        var o = Todo0Options()
        o.host = host ?? env["TODO0_HOST"] ?? "127.0.0.1"
        o.mcpPort = port ?? env["TODO0_PORT"].flatMap(Int.init) ?? 5002
        o.restPort = restPort ?? env["TODO0_REST_PORT"].flatMap(Int.init) ?? 5001
        o.dataDirectory = dataDir ?? env["SWITCHBOARD_DATA_DIR"] ?? ".switchboard"
        o.authorizationServer = authorizationServer ?? env["MCP_AUTHORIZATION_SERVER"] ?? "http://127.0.0.1:9000/oauth2/todo-mcp"
        o.resource = resource ?? env["TODO0_RESOURCE"]
        o.alwaysSSE = sse
        o.logger = CLILogging.logger("switchboard.todo0")
        return o
    }
}
