import ArgumentParser
import Foundation
import StandardPlugins
import TenantTools

/// `switchboard doctor [FILE]`: live checks of connections.yaml against its IdP and servers.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check a connections.yaml live: issuer, agent key, authorization servers, scopes, MCP servers' resource metadata. Exit 0 only when all pass."
    )

    @Argument(help: "The file to check (default: connections.yaml, or SWITCHBOARD_CONFIG).")
    var file: String?
    @Flag(help: "One JSON object: {ok, checks: [{id, status, title, detail, fix}]}.") var json = false

    func run() async throws {
        let path = file ?? ProcessInfo.processInfo.environment["SWITCHBOARD_CONFIG"] ?? "connections.yaml"
        let checks = await TenantHTTP.with { await Doctor(configPath: path, plugins: StandardPlugins.registry(), httpClient: $0).run() }
        try Self.report(checks, json: json)
    }

    /// The checks as ✓/✗ lines (or one JSON object); exit 1 unless all passed.
    static func report(_ checks: [DoctorCheck], json: Bool) throws {
        let ok = checks.allSatisfy { $0.status == .pass }
        if json {
            struct Report: Encodable { var ok: Bool; var checks: [DoctorCheck] }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(Report(ok: ok, checks: checks)), as: UTF8.self))
        } else {
            checks.forEach { print($0.rendered) }
            let failed = checks.filter { $0.status != .pass }.count
            print(ok ? "\nall \(checks.count) checks passed" : "\n\(failed) of \(checks.count) checks did not pass")
        }
        if !ok { throw ExitCode(1) }
    }
}
