import ArgumentParser
import Foundation
import Gateway
import StandardPlugins

/// `switchboard validate [FILE]`: check connections.yaml without starting anything.
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a connections.yaml: syntax, keys, references, plugin parameters. Exit 1 on any problem."
    )

    @Argument(help: "The file to check (default: connections.yaml, or SWITCHBOARD_CONFIG).")
    var file: String?

    func run() throws {
        let path = file ?? ProcessInfo.processInfo.environment["SWITCHBOARD_CONFIG"] ?? "connections.yaml"
        let loader = RegistryLoader(plugins: StandardPlugins.registry())
        do {
            let plan = try loader.load(path: path)
            let summary = plan.connections.map { c in
                "  \(c.descriptor.name) (\(c.descriptor.kind.rawValue)\(c.strategy.map { ", " + $0.pluginID } ?? "")\(c.enabled ? "" : ", disabled"))"
            }
            print("\(path): OK, \(plan.connections.count) connection(s)")
            summary.forEach { print($0) }
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(1)
        }
    }
}
