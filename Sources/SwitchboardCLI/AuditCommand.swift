import ArgumentParser
import Foundation
import Gateway
import PluginAPI

/// `switchboard audit`: read the gateway's audit trail (its SQLite file), filtered.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "List the audit trail's records, newest first: who called what, the decision, the outcome."
    )

    @Option(help: "The audit database (default: .switchboard/audit.sqlite next to connections.yaml, or SWITCHBOARD_CONFIG's).")
    var db: String?
    @Option(help: "A user: their sub or email.") var user: String?
    @Option(help: "A connection's name.") var connection: String?
    @Option(help: "An MCP tool's name.") var tool: String?
    @Option(help: "allowed, denied, rate_limited or error.") var decision: String?
    @Option(help: "Only records newer than this: 30m, 24h, 7d, or seconds since 1970.") var since: String?
    @Option(help: "At most this many records.") var limit: Int = 100
    @Flag(help: "One JSON object per line instead of a table.") var json = false

    func run() throws {
        let config = ProcessInfo.processInfo.environment["SWITCHBOARD_CONFIG"] ?? "connections.yaml"
        let path = db ?? ((config as NSString).deletingLastPathComponent as NSString).appendingPathComponent(".switchboard/audit.sqlite")
        guard FileManager.default.fileExists(atPath: path) else {
            FileHandle.standardError.write(Data("no audit database at \(path) (--db PATH)\n".utf8))
            throw ExitCode(1)
        }
        var sinceSeconds: Double?
        if let since {
            guard let s = Self.since(since) else {
                FileHandle.standardError.write(Data("--since '\(since)': use 30m, 24h, 7d or seconds since 1970\n".utf8))
                throw ExitCode(2)
            }
            sinceSeconds = s
        }
        let records = try AuditStore(path: path).query(AuditQuery(
            user: user, connection: connection, tool: tool, decision: decision, since: sinceSeconds, limit: limit))
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            for r in records { print(String(decoding: try encoder.encode(r), as: UTF8.self)) }
            return
        }
        let time = ISO8601DateFormatter()
        print("time                  user                  connection    call                          decision       status  ms")
        for r in records {
            let call = r.kind == "mcp" ? [r.mcpMethod, r.tool].compactMap { $0 }.joined(separator: " ") : "\(r.restMethod ?? "") \(r.path ?? "")"
            let decision = r.decision + (r.rule.map { " (\($0))" } ?? "")
            print([time.string(from: Date(timeIntervalSince1970: r.time)), (r.email ?? r.sub ?? "-").padding(20), r.connection.padding(12),
                   call.padding(28), decision.padding(13), String(r.status).padding(6), String(format: "%.1f", r.durationMS)].joined(separator: "  "))
        }
    }

    /// `30m`, `24h`, `7d` ago (written as connections.yaml writes durations), or seconds since 1970.
    static func since(_ text: String) -> Double? {
        if let absolute = Double(text) { return absolute }
        guard let d = ConfigDuration.parse(text) else { return nil }
        return Date().timeIntervalSince1970 - Double(d.components.seconds) - Double(d.components.attoseconds) / 1e18
    }
}

private extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
