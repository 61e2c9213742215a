import ArgumentParser
import CortexServer
import Foundation
import NIOCore
import NIOPosix

/// Serves machine-learning models behind a production API.
struct CortexCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cortex",
        abstract: "Serve machine-learning models behind a production API.",
        version: CortexVersion.current,
        subcommands: [
            ServeCommand.self, ConfigCommand.self, ModelsCommand.self, TenantsCommand.self, KeysCommand.self, CreditsCommand.self,
            DatabaseCommand.self, TrafficCommand.self,
        ],
        defaultSubcommand: ServeCommand.self
    )
}

@main
enum Main {
    static func main() {
        // Swift concurrency runs on NIO's event loops, so a request's handler and its socket I/O
        // share threads instead of hopping between Dispatch's pool and NIO's on every await.
        // This must happen before any task starts, hence the synchronous entry point.
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        Task {
            await CortexCommand.main()
            exit(0)
        }
        dispatchMain()
    }
}
