import ArgumentParser
import CortexStore
import Foundation

struct DatabaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Work with the configured database.",
        subcommands: [Backup.self]
    )

    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a consistent copy of the database to FILE, safe while the server runs."
        )

        @OptionGroup var options: ConfigurationOptions

        @Argument(help: "Where to write the copy; must not exist yet.")
        var file: String

        func run() async throws {
            try await options.withStore { store in
                do {
                    try await store.backup(to: file)
                } catch let error as SQLiteStore.Failure {
                    throw CommandFailure(error.reason)
                }
            }
            print("backup written to \(URL(fileURLWithPath: file).standardizedFileURL.path)")
        }
    }
}
