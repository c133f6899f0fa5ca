import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `switchboard`: one binary, a subcommand per service. No logic lives here.
@main
struct Switchboard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "A connection gateway for AI agents.",
        subcommands: [DevCommand.self, AgentCommand.self, GatewayCommand.self, IdPCommand.self, ISVCommand.self, LLMCommand.self, Todo0Command.self, ValidateCommand.self, AuditCommand.self, DoctorCommand.self, OktaCommand.self]
    )

    /// Every file a service creates is its owner's only: keys, SQLite files (and their -wal and
    /// -shm, which SQLite gives the database's mode), the audit trail, state files. One rule for
    /// all of them, set before anything runs (the services `switchboard dev` starts inherit it).
    static func main() async {
        umask(0o077)
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
