import ArgumentParser
import CortexCore
import CortexStore
import Foundation

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Issue, list and revoke API keys on the configured database.",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a key; it is printed once and never stored.")

        @OptionGroup var options: ConfigurationOptions

        @Option(help: "The tenant that owns the key.")
        var tenant: String

        @Option(help: "Comma-separated scopes: infer, admin.")
        var scopes: String = "infer"

        @Option(name: .customLong("expires-in"), help: "Lifetime such as 30d or 12h; no expiry if omitted.")
        var expiresIn: DurationArgument?

        func run() async throws {
            guard let scopeSet = Scope.parseList(scopes) else {
                throw ValidationError("--scopes must be a comma-separated list of: infer, admin")
            }
            let issued = try await options.withStore { store in
                let owner = try await store.requireTenant(named: tenant)
                return try await store.issueKey(
                    tenantID: owner.id,
                    scopes: scopeSet,
                    expiresAt: expiresIn.map { Date().addingTimeInterval($0.seconds) }
                )
            }
            print(issued.key)
            FileHandle.standardError.write(
                Data(
                    "key \(issued.record.id) (\(issued.record.displayPrefix)) for tenant \(tenant), scopes \(scopes); store it now: it cannot be shown again\n"
                        .utf8
                )
            )
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a tenant's keys (prefixes only).")

        @OptionGroup var options: ConfigurationOptions

        @Option(help: "The tenant whose keys to list.")
        var tenant: String

        func run() async throws {
            let keys = try await options.withStore { store in
                let owner = try await store.requireTenant(named: tenant)
                return try await store.keys(tenantID: owner.id)
            }
            let now = Date()
            print("ID\tPREFIX\tSCOPES\tSOURCE\tSTATUS\tEXPIRES")
            for key in keys {
                let status: String
                if let revokedAt = key.revokedAt {
                    status = revokedAt <= now ? "revoked" : "revoking at \(revokedAt.ISO8601Format())"
                } else {
                    status = key.isActive(at: now) ? "active" : "expired"
                }
                let scopes = key.scopes.sorted().map(\.rawValue).joined(separator: ",")
                print(
                    "\(key.id)\t\(key.displayPrefix)\t\(scopes)\t\(key.source.rawValue)\t\(status)\t\(key.expiresAt?.ISO8601Format() ?? "-")"
                )
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key now, or after a grace period.")

        @OptionGroup var options: ConfigurationOptions

        @Argument(help: "The key's id (see `cortex keys list`).")
        var id: Int64

        @Option(help: "Keep the key working this long, e.g. 1h, while clients move to a new one.")
        var grace: DurationArgument?

        func run() async throws {
            let at = Date().addingTimeInterval(grace?.seconds ?? 0)
            let found = try await options.withStore { try await $0.revokeKey(id: id, at: at) }
            guard found else { throw CommandFailure("no key with id \(id)") }
            print("key \(id) revoked from \(at.ISO8601Format())")
        }
    }
}
