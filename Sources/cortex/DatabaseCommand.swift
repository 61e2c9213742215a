import ArgumentParser
import CortexStore
import Foundation

struct DatabaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Work with the configured database.",
        subcommands: [Backup.self, Verify.self]
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
                } catch let error as StoreFailure {
                    throw CommandFailure(error.reason)
                }
            }
            print("backup written to \(URL(fileURLWithPath: file).standardizedFileURL.path)")
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the database; exits 1 and names each problem if any is found."
        )

        @OptionGroup var options: ConfigurationOptions

        func run() async throws {
            let (problems, version) = try await options.withStore { store in
                (try await store.verify(), try await store.schemaVersion())
            }
            guard problems.isEmpty else {
                for problem in problems { print("DRIFT \(problem)") }
                throw ExitCode(1)
            }
            print("database OK (schema version \(version))")
        }
    }
}
