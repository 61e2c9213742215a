import ArgumentParser
import CortexCore
import CortexStore
import Foundation

struct CreditsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credits",
        abstract: "Grant credits and read balances and ledger entries on the configured database.",
        discussion: "Works with the server stopped or running: every change is a ledger entry, as the admin API makes them.",
        subcommands: [Grant.self, Deduct.self, Balance.self, Entries.self, ReleaseExpired.self]
    )

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add credits to a tenant.")

        @OptionGroup var change: Change

        func run() async throws {
            try await change.apply(removing: false)
        }
    }

    struct Deduct: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove credits from a tenant (never below zero).")

        @OptionGroup var change: Change

        func run() async throws {
            try await change.apply(removing: true)
        }
    }

    /// What `grant` and `deduct` take, and the one way both are recorded: a ledger grant entry.
    struct Change: ParsableArguments {
        @OptionGroup var options: ConfigurationOptions

        @Argument(help: "The tenant's name.")
        var tenant: String

        @Argument(help: "Credits, a positive decimal with at most 6 places, e.g. 100 or 0.5.")
        var amount: String

        @Option(help: "Why, kept with the entry.")
        var note: String?

        func apply(removing: Bool) async throws {
            guard let credits = Credits(decimal: amount), credits > .zero else {
                throw ValidationError("amount must be a positive decimal with at most 6 places, e.g. 100 or 0.5")
            }
            let change = removing ? Credits(microcredits: -credits.microcredits) : credits
            let outcome = try await options.withStore { store in
                let tenant = try await store.requireTenant(named: self.tenant)
                // A fresh id per invocation: running the command twice changes the balance twice, as asked.
                let requestID = "cli-" + UUID().uuidString.lowercased()
                return try await store.ledger.grant(
                    CortexStore.Grant(tenantID: tenant.id, amount: change, requestID: requestID, note: note)
                )
            }
            switch outcome {
            case .granted(let balance):
                print("\(removing ? "deducted" : "granted") \(credits) \(removing ? "from" : "to") \(tenant); balance \(balance)")
            case .insufficient(let balance):
                throw CommandFailure("cannot deduct \(credits) credits: the balance is \(balance)")
            case .overLimit(let balance):
                throw CommandFailure(
                    "cannot grant \(credits) credits: a balance, with what is held from it, can hold at most \(Credits.maximumBalance) credits; the balance is \(balance)"
                )
            case .duplicateRequest, .unknownTenant:
                throw CommandFailure("the change was not recorded; run the command again")
            }
        }
    }

    struct Balance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a tenant's balance, open holds and usage per model.")

        @OptionGroup var options: ConfigurationOptions

        @Argument(help: "The tenant's name.")
        var tenant: String

        func run() async throws {
            let (balance, usage) = try await options.withStore { store in
                let tenant = try await store.requireTenant(named: self.tenant)
                return (try await store.ledger.balance(tenantID: tenant.id), try await store.ledger.usage(tenantID: tenant.id))
            }
            print("balance\t\(balance.available)")
            print("held\t\(balance.held)")
            print("leased\t\(balance.leased)")
            for model in usage {
                print("model \(model.model)\t\(model.requests) requests\t\(model.spent) credits")
            }
        }
    }

    struct Entries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a tenant's ledger entries, newest first.")

        @OptionGroup var options: ConfigurationOptions

        @Argument(help: "The tenant's name.")
        var tenant: String

        @Option(help: "How many entries (1-100000).")
        var limit = 50

        @Option(help: "Only entries with an id below this one (for paging).")
        var before: Int64?

        func validate() throws {
            guard (1...100_000).contains(limit) else { throw ValidationError("--limit must be from 1 to 100000") }
        }

        func run() async throws {
            let entries = try await options.withStore { store in
                let tenant = try await store.requireTenant(named: self.tenant)
                return try await store.ledger.entries(tenantID: tenant.id, limit: limit, before: before)
            }
            print("ID\tCREATED\tKIND\tAMOUNT\tREQUEST\tMODEL\tNOTE")
            for entry in entries {
                print(
                    "\(entry.id)\t\(entry.createdAt.ISO8601Format())\t\(entry.kind.rawValue)\t\(entry.amount)\t\(entry.requestID)\t"
                        + "\(entry.model ?? "-")\t\(entry.note ?? "-")"
                )
            }
        }
    }

    struct ReleaseExpired: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "release-expired",
            abstract: "Release holds past their expiry (a running server does this by itself)."
        )

        @OptionGroup var options: ConfigurationOptions

        func run() async throws {
            let released = try await options.withStore { try await $0.ledger.releaseExpiredHolds(at: Date()) }
            print("released \(released) expired hold(s)")
        }
    }
}

extension StateStore {
    /// The tenant of that name, or a failure that names it.
    func requireTenant(named name: String) async throws -> Tenant {
        guard let tenant = try await tenant(named: name) else {
            throw CommandFailure("no tenant named '\(name)'; create it with `cortex tenants create \(name)`")
        }
        return tenant
    }
}
