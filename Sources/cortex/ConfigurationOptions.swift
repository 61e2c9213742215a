import ArgumentParser
import CortexRuntime
import CortexServer
import Foundation

/// Options shared by every command that reads the configuration.
struct ConfigurationOptions: ParsableArguments {
    @Option(name: .long, help: "A YAML configuration file (default: $CORTEX_CONFIG). Environment variables override it.")
    var config: String?

    /// Loads the file and the environment, or exits with the offending key named.
    ///
    /// - Parameter commandLine: Values of a command's own options (`--port`), by YAML key; they win over every other source.
    func load(commandLine: [String: String] = [:]) throws -> CortexConfiguration {
        let environment = ProcessInfo.processInfo.environment
        do {
            return try CortexConfiguration.load(
                file: config ?? environment["CORTEX_CONFIG"], environment: environment, commandLine: commandLine)
        } catch let error as ConfigurationError {
            FileHandle.standardError.write(Data("cortex: \(error)\n".utf8))
            throw ExitCode(78)
        }
    }
}
