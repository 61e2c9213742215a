import ArgumentParser
import CortexStore
import Foundation

struct TenantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenants",
        abstract: "Create and list tenants on the configured database.",
        subcommands: [Create.self, List.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant.")

        @OptionGroup var options: ConfigurationOptions

        @Argument(help: "The tenant's name: letters, digits, '-', '_' and '.'.")
        var name: String

        func run() async throws {
            let tenant = try await options.withStore { try await $0.createTenant(named: name) }
            print("created tenant \(tenant.name) (id \(tenant.id))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tenants.")

        @OptionGroup var options: ConfigurationOptions

        func run() async throws {
            let tenants = try await options.withStore { try await $0.tenants() }
            print("ID\tNAME\tCREATED")
            for tenant in tenants {
                print("\(tenant.id)\t\(tenant.name)\t\(tenant.createdAt.ISO8601Format())")
            }
        }
    }
}
