import ArgumentParser
import CortexCore
import CortexServer
import CortexStore
import Foundation

/// `cortex traffic show|set|promote|history`: the A/B split of `POST /v1/infer` (or, with
/// `--endpoint`, of a named endpoint), as stored in the database (every running replica applies a
/// change within two seconds).
struct TrafficCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "traffic",
        abstract: "Show, change, promote and trace the A/B split of POST /v1/infer or a named endpoint.",
        subcommands: [Show.self, Set.self, Promote.self, History.self]
    )

    /// `--endpoint NAME`: the endpoint's configured switches (`/v1/infer` when not given).
    struct EndpointOption: ParsableArguments {
        @Option(name: .customLong("endpoint"), help: "A named endpoint of traffic.endpoints (default: /v1/infer).")
        var endpoint: String?

        func configured(_ configuration: CortexConfiguration) throws -> CortexConfiguration.Traffic {
            let name = endpoint ?? configuration.traffic.endpoint
            guard let traffic = configuration.allTraffic.first(where: { $0.endpoint == name }) else {
                let names = configuration.allTraffic.map(\.endpoint).joined(separator: ", ")
                throw ValidationError("no traffic split is configured for '\(name)'; there is one for \(names)")
            }
            return traffic
        }
    }

    /// Stores the switches `next` makes of those in force (``TrafficSync/store(_:endpoint:base:actor:next:)``).
    static func store(
        _ configured: CortexConfiguration.Traffic, options: ConfigurationOptions,
        next: @escaping (CortexConfiguration.Traffic) throws -> CortexConfiguration.Traffic
    ) async throws -> TrafficRecord {
        do {
            return try await options.withStore { store in
                try await TrafficSync.store(store, endpoint: configured.endpoint, base: configured, actor: "cli", next: next).record
            }
        } catch let error as APIError {
            throw CommandFailure(error.message)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the split in force: the stored one, else the configured one.")

        @OptionGroup var options: ConfigurationOptions
        @OptionGroup var endpoint: EndpointOption

        func run() async throws {
            let configured = try endpoint.configured(try options.load())
            let record = try await options.withStore { try await $0.trafficSettings(endpoint: configured.endpoint) }
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
        @OptionGroup var endpoint: EndpointOption

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
            let configured = try endpoint.configured(try options.load())
            let change = TrafficControl.Change(
                weightA: weightA, weightB: weightB, shadowEnabled: shadow.map { $0 == .on }, canaryEnabled: canary.map { $0 == .on })
            // On top of what is in force: the stored settings, else the configured ones.
            let record = try await TrafficCommand.store(configured, options: options) { try TrafficControl.applying(change, to: $0) }
            print("stored version \(record.version): \(record.settings)")
        }
    }

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make vB the primary on every running replica: each loads vB's file as vA within two seconds.")

        @OptionGroup var options: ConfigurationOptions
        @OptionGroup var endpoint: EndpointOption

        func run() async throws {
            let configured = try endpoint.configured(try options.load())
            let record = try await TrafficCommand.store(configured, options: options) { current in
                var next = current
                next.promotions += 1
                return next
            }
            print("stored version \(record.version): \(record.settings)")
            print("each running replica loads \(configured.variantB)'s file as \(configured.variantA) (MODEL_PROMOTED in its log)")
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the stored changes, newest first: version, when, who, the settings.")

        @OptionGroup var options: ConfigurationOptions
        @OptionGroup var endpoint: EndpointOption

        @Option(help: "How many changes to print.")
        var limit = 20

        func run() async throws {
            let configured = try endpoint.configured(try options.load())
            let changes = try await options.withStore { try await $0.trafficChanges(endpoint: configured.endpoint, limit: limit) }
            if changes.isEmpty { print("no changes stored: the configured split (AB_WEIGHT_A, AB_WEIGHT_B) is in force") }
            for change in changes {
                print("\(change.version)\t\(change.changedAt.ISO8601Format())\t\(change.actor ?? "?")\t\(change.settings)")
            }
        }
    }
}
