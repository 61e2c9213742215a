import ArgumentParser
import CortexServer

@main
struct CortexCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cortex",
        abstract: "Serve machine-learning models behind a production API.",
        version: CortexVersion.current,
        subcommands: [ServeCommand.self, ConfigCommand.self, ModelsCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}
