import ArgumentParser
import CortexCore
import CortexServer
import CortexStore
import Foundation

/// `cortex traffic show|set|history`: the A/B split of `POST /v1/infer`, as stored in the database
/// (every running replica applies a change within two seconds).
struct TrafficCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "traffic",
        abstract: "Show, change and trace the A/B split of POST /v1/infer.",
        subcommands: [Show.self, Set.self, History.self]
    )

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the split in force: the stored one, else the configured one.")

        @OptionGroup var options: ConfigurationOptions

        func run() async throws {
            let configured = try options.load().traffic
            let record = try await options.withStore { try await $0.trafficSettings(endpoint: TrafficControl.endpoint) }
            guard let record else {
                print("configured (never changed): \(TrafficControl.json(configured))")
                return
            }
            print("version \(record.version), \(record.changedAt.ISO8601Format()): \(record.settings)")
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store a new split; running replicas apply it within two seconds.")

        @OptionGroup var options: ConfigurationOptions

        @Option(name: .customLong("ab-weight-a"), help: "vA's weight (0 to 1000000).")
        var weightA: Double?

        @Option(name: .customLong("ab-weight-b"), help: "vB's weight (0 to 1000000).")
        var weightB: Double?

        @Option(name: .customLong("shadow"), help: "Shadow traffic: on or off.")
        var shadow: Switch?

        @Option(name: .customLong("canary"), help: "Canary analysis: on (from its first step) or off.")
        var canary: Switch?

        enum Switch: String, ExpressibleByArgument {
            case on, off
        }

        func run() async throws {
            guard weightA != nil || weightB != nil || shadow != nil || canary != nil else {
                throw ValidationError("give at least one of --ab-weight-a, --ab-weight-b, --shadow, --canary")
            }
            let configuration = try options.load()
            let record = try await options.withStore { store in
                // On top of what is in force: the stored settings, else the configured ones.
                var current = configuration.traffic
                if let stored = try await store.trafficSettings(endpoint: TrafficControl.endpoint) {
                    current = try TrafficControl.settings(stored: stored.settings, on: configuration.traffic)
                }
                let next: CortexConfiguration.Traffic
                do {
                    next = try TrafficControl.applying(
                        TrafficControl.Change(
                            weightA: weightA, weightB: weightB, shadowEnabled: shadow.map { $0 == .on },
                            canaryEnabled: canary.map { $0 == .on }), to: current)
                } catch let error as APIError {
                    throw CommandFailure(error.message)
                }
                return try await store.saveTrafficSettings(
                    endpoint: TrafficControl.endpoint, settings: TrafficControl.json(next), actor: "cli")
            }
            print("stored version \(record.version): \(record.settings)")
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the stored changes, newest first: version, when, who, the settings.")

        @OptionGroup var options: ConfigurationOptions

        @Option(help: "How many changes to print.")
        var limit = 20

        func run() async throws {
            let changes = try await options.withStore { try await $0.trafficChanges(endpoint: TrafficControl.endpoint, limit: limit) }
            if changes.isEmpty { print("no changes stored: the configured split (AB_WEIGHT_A, AB_WEIGHT_B) is in force") }
            for change in changes {
                print("\(change.version)\t\(change.changedAt.ISO8601Format())\t\(change.actor ?? "?")\t\(change.settings)")
            }
        }
    }
}
