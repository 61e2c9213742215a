import ArgumentParser
import CortexCore
import CortexRuntime
import CortexServer
import CortexStore
import Foundation
import Logging
import Prometheus

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Start the server on the configured models (default: the bundled lead-scoring model)."
    )

    @OptionGroup var options: ConfigurationOptions

    @Option(
        name: .long,
        help: "Serve this model (PATH, NAME=PATH or NAME:VERSION=PATH) instead of the configured ones; repeatable.")
    var model: [String] = []

    @Option(name: .long, help: "Port to listen on (overrides PORT).")
    var port: Int?

    @Option(name: .long, help: "Interface to listen on (overrides HOST).")
    var host: String?

    /// This command's options that are settings, by YAML key.
    private var commandLine: [String: String] {
        var values: [String: String] = [:]
        values["server.port"] = port.map(String.init)
        values["server.host"] = host
        return values
    }

    func run() async throws {
        // Before any model is loaded: a model let go gives its memory back (ModelMemory explains).
        ModelMemory.returnFreedModels(environment: ProcessInfo.processInfo.environment)
        var configuration = try options.load(commandLine: commandLine)
        if !model.isEmpty {
            do {
                configuration.models = try CortexConfiguration.modelSources(model, setting: "--model")
            } catch {
                FileHandle.standardError.write(Data("cortex: \(error)\n".utf8))
                throw ExitCode(78)
            }
        }
        do {
            configuration.server.maxConnections = try ConnectionCapacity.prepare(
                maxConnections: configuration.server.maxConnections, explicit: configuration.server.maxConnectionsSet)
        } catch {
            FileHandle.standardError.write(Data("cortex: \(error)\n".utf8))
            throw ExitCode(78)
        }

        let level = configuration.log.level
        let output = LogOutput()
        defer { output.flush() }
        // With tracing on, every line written inside a span carries its trace_id and span_id.
        let traceMetadata = configuration.traces.endpoint == nil ? nil : CortexConfiguration.Traces.logMetadata
        switch configuration.log.format {
        case .json:
            let redactor = SecretRedactor(secrets: configuration.secrets)
            LoggingSystem.bootstrap(
                { label, provider in
                    var handler = JSONLogHandler(label: label, level: level, output: output, redactor: redactor)
                    handler.metadataProvider = provider
                    return handler
                }, metadataProvider: traceMetadata)
        case .text:
            LoggingSystem.bootstrap(
                { label, provider in
                    var handler = StreamLogHandler.standardOutput(label: label, metadataProvider: provider)
                    handler.logLevel = level
                    return handler
                }, metadataProvider: traceMetadata)
        }
        let logger = Logger(label: "cortex")

        switch configuration.database {
        case .sqlite(let path):
            // The inference platform's operators look for this exact line.
            FileHandle.standardOutput.write(Data("USING DB FILE: \(path)\n".utf8))
        case .postgres(let url):
            FileHandle.standardOutput.write(Data("USING DATABASE: \(RedactedURL.redacting(url))\n".utf8))
        }

        let file = options.config ?? ProcessInfo.processInfo.environment["CORTEX_CONFIG"]
        let commandLine = commandLine
        let prometheus = PrometheusCollectorRegistry()
        do {
            try await StateStore.withOpened(
                configuration.database, metrics: ServerDependencies.metricsFactory(prometheus), logger: logger
            ) { store in
                let dependencies = try await ServerDependencies.open(
                    configuration: configuration, store: store, prometheus: prometheus, logger: logger
                ) {
                    try CortexConfiguration.load(file: file, environment: ProcessInfo.processInfo.environment, commandLine: commandLine)
                }
                do {
                    try await runServer(dependencies, first: [CloseOnShutdown { output.flush() }], logger: logger)
                } catch {
                    throw ServingFailure(error: error)
                }
            }
        } catch let failure as ServingFailure {
            throw failure.error
        } catch {
            logger.critical("STARTUP_FAIL", metadata: ["error": "\(error)"])
            output.flush()
            throw ExitCode(1)
        }
    }
}

/// An error from the running server, told apart from a start-up failure (`STARTUP_FAIL`).
private struct ServingFailure: Error {
    var error: any Error
}
