import ArgumentParser
import CortexServer
import CortexStore
import Foundation
import Logging

extension ConfigurationOptions {
    /// Opens the configured database (running any pending migrations), runs `body`, closes it.
    ///
    /// Safe while a server runs on the same database: SQLite's WAL mode lets both write, and PostgreSQL serves many clients.
    func withStore<Value>(_ body: (StateStore) async throws -> Value) async throws -> Value {
        let configuration = try load()
        do {
            return try await StateStore.withOpened(
                configuration.database, logger: Logger(label: "cortex", factory: { _ in SwiftLogNoOpLogHandler() }), body)
        } catch let error as IdentityStoreError {
            throw CommandFailure(error.description)
        }
    }
}

/// Parses durations such as `90s`, `15m`, `12h`, `30d`.
struct DurationArgument: ExpressibleByArgument {
    var seconds: TimeInterval

    init?(argument: String) {
        guard let unit = argument.last, let value = Double(argument.dropLast()), value >= 0, value.isFinite else { return nil }
        switch unit {
        case "s": seconds = value
        case "m": seconds = value * 60
        case "h": seconds = value * 3600
        case "d": seconds = value * 86_400
        default: return nil
        }
    }
}

/// A command that could not do what was asked; ArgumentParser prints it as `Error: ...` and exits 1.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
