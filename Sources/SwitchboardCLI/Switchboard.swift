import ArgumentParser

/// `switchboard`: one binary, a subcommand per service. No logic lives here.
@main
struct Switchboard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "A connection gateway for AI agents.",
        subcommands: [DevCommand.self, AgentCommand.self, GatewayCommand.self, IdPCommand.self, ISVCommand.self, LLMCommand.self, Todo0Command.self, ValidateCommand.self, AuditCommand.self]
    )
}
