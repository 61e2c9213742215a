import CortexCore
import CortexTestSupport
import Foundation
import Logging
import Testing

@testable import CortexStore

/// The ledger with credit leases on real SQLite and PostgreSQL: the same guarantees as the
/// database's own holds, with one write per request.
@Suite("Credit leases on SQLite and PostgreSQL")
struct LeasingLedgerTests {
    static let policy = CreditLeasePolicy(holdsPerLease: 10, lifetime: .seconds(30))

    static func hold(_ tenant: Int64, _ requestID: String, _ amount: String, unique: Bool = true) -> Hold {
        Hold(
            tenantID: tenant, requestID: requestID, amount: LedgerTests.credits(amount), model: "m", keyID: nil,
            expiresAt: Date().addingTimeInterval(300), requestIDIsUnique: unique)
    }

    /// The lease rows: (tenant, owner) → amount.
    static func leases(_ store: StateStore) async throws -> [String: Int64] {
        var leases: [String: Int64] = [:]
        for row in try await store.database.query("SELECT tenant_id, owner, amount_micros FROM credit_leases") {
            leases["\(row.integer("tenant_id") ?? 0)/\(row.text("owner") ?? "")"] = row.integer("amount_micros")
        }
        return leases
    }

    static func count(_ store: StateStore, _ sql: String) async throws -> Int64 {
        try await store.database.query(sql).first?.integer("n") ?? -1
    }

    @Test(
        "holds go on a lease taken in one write; settling writes both entries and charges the lease; verify stays clean",
        arguments: Backend.allCases)
    func holdsOnALease(backend: Backend) async throws {
        try await LedgerTests.withTenant(backend, balance: "1000") { store, tenant in
            let ledger = store.useCreditLeases(Self.policy)
            #expect(store.ledger is LeasingLedger)
            for index in 0..<25 {
                let outcome = try await ledger.hold(Self.hold(tenant.id, "r\(index)", "1"))
                guard case .held = outcome else { Issue.record("hold \(index): \(outcome)"); return }
                if index == 0 {
                    // The first hold took a lease of 10 holds: out of the balance row, into the lease row.
                    #expect(try await Self.leases(store) == ["\(tenant.id)/\(ledger.owner)": 10_000_000])
                    #expect(try await Self.count(store, "SELECT balance_micros AS n FROM tenants") == 990_000_000)
                    #expect(try await Self.count(store, "SELECT COUNT(*) AS n FROM open_holds") == 0, "no hold row is written")
                    #expect(
                        try await ledger.balance(tenantID: tenant.id)
                            == Balance(
                                available: LedgerTests.credits("999"), held: LedgerTests.credits("1"), leased: LedgerTests.credits("10")))
                }
                #expect(
                    try await ledger.settle(
                        tenantID: tenant.id, requestID: "r\(index)", cost: LedgerTests.credits("0.5"), idempotentResponse: nil))
            }
            // 25 settled at 0.5: 12.5 spent. The 20th hold found 0.5 left and took a second lease
            // of 10: 20 - 12.5 left on the lease.
            #expect(try await Self.leases(store) == ["\(tenant.id)/\(ledger.owner)": 7_500_000])
            #expect(
                try await ledger.balance(tenantID: tenant.id)
                    == Balance(available: LedgerTests.credits("987.5"), held: .zero, leased: LedgerTests.credits("7.5")))
            #expect(
                try await ledger.usage(tenantID: tenant.id) == [ModelUsage(model: "m", requests: 25, spent: LedgerTests.credits("12.5"))])
            let entries = try await ledger.entries(tenantID: tenant.id, limit: 100, before: nil)
            #expect(entries.filter { $0.kind == .hold }.count == 25 && entries.filter { $0.kind == .settle }.count == 25)
            #expect(try await store.verify().isEmpty)
            // A release of a leased hold gives it back to the lease and writes nothing.
            _ = try await ledger.hold(Self.hold(tenant.id, "failed", "1"))
            #expect(try await ledger.release(tenantID: tenant.id, requestID: "failed"))
            #expect(!(try await ledger.release(tenantID: tenant.id, requestID: "failed")))
            #expect(try await Self.count(store, "SELECT COUNT(*) AS n FROM ledger_entries WHERE request_id = 'failed'") == 0)
            // Returning the lease puts what is left back in the balance row.
            await ledger.returnAll()
            #expect(try await Self.leases(store).isEmpty)
            #expect(try await Self.count(store, "SELECT balance_micros AS n FROM tenants") == 987_500_000)
            #expect(try await store.verify().isEmpty)
        }
    }

    @Test(
        "holds with a client's request id, or an Idempotency-Key, and holds on a balance below 16 leases go to the database",
        arguments: Backend.allCases)
    func databaseHolds(backend: Backend) async throws {
        try await LedgerTests.withTenant(backend, balance: "100") { store, tenant in
            let ledger = store.useCreditLeases(Self.policy)
            _ = try await ledger.hold(Self.hold(tenant.id, "client-id", "1", unique: false))
            var keyed = Self.hold(tenant.id, "keyed", "1")
            keyed.idempotency = Idempotency(key: "k", fingerprint: "f")
            _ = try await ledger.hold(keyed)
            // 100 credits cover 16 leases of 10 holds of 5 (800) no longer: the database holds it.
            _ = try await ledger.hold(Self.hold(tenant.id, "big", "5"))
            #expect(try await Self.count(store, "SELECT COUNT(*) AS n FROM open_holds") == 3)
            #expect(try await Self.leases(store).isEmpty)
            // And a second request with the client's id is refused before any work.
            #expect(try await ledger.hold(Self.hold(tenant.id, "client-id", "1", unique: false)) == .duplicateRequest)
            for id in ["client-id", "keyed", "big"] {
                #expect(
                    try await ledger.settle(tenantID: tenant.id, requestID: id, cost: LedgerTests.credits("1"), idempotentResponse: nil))
            }
            #expect(try await ledger.balance(tenantID: tenant.id).available == LedgerTests.credits("97"))
            #expect(try await store.verify().isEmpty)
        }
    }

    @Test(
        "a leased settlement of a request id billed before writes nothing, charges nothing, and the lease goes back",
        arguments: Backend.allCases)
    func billedBefore(backend: Backend) async throws {
        try await LedgerTests.withTenant(backend, balance: "1000") { store, tenant in
            let ledger = store.useCreditLeases(Self.policy)
            _ = try await ledger.hold(Self.hold(tenant.id, "same", "1", unique: false))
            #expect(
                try await ledger.settle(tenantID: tenant.id, requestID: "same", cost: LedgerTests.credits("1"), idempotentResponse: nil))
            // The same id again, claimed to be unique (it never is in Cortex: its ids do not repeat).
            guard case .held = try await ledger.hold(Self.hold(tenant.id, "same", "1")) else { Issue.record("held on the lease"); return }
            #expect(
                !(try await ledger.settle(tenantID: tenant.id, requestID: "same", cost: LedgerTests.credits("1"), idempotentResponse: nil)))
            #expect(try await ledger.balance(tenantID: tenant.id).available == LedgerTests.credits("999"))
            #expect(try await Self.leases(store).values.first == 10_000_000, "the lease lost nothing")
            // The lease is suspect now: returned whole once idle.
            await ledger.returnAll()
            #expect(try await Self.leases(store).isEmpty)
            #expect(try await Self.count(store, "SELECT balance_micros AS n FROM tenants") == 999_000_000)
            #expect(try await store.verify().isEmpty)
        }
    }

    @Test(
        "a replica that dies leaves its lease: the balance still counts it, verify is clean, and once expired any replica returns it",
        arguments: Backend.allCases)
    func deadReplica(backend: Backend) async throws {
        try await LedgerTests.withTenant(backend, balance: "1000") { store, tenant in
            // Its lease expires a minute after it was taken; the times below are given, not waited for.
            let ledger = store.useCreditLeases(CreditLeasePolicy(holdsPerLease: 10, lifetime: .seconds(60)))
            for index in 0..<3 {
                _ = try await ledger.hold(Self.hold(tenant.id, "r\(index)", "1"))
            }
            #expect(try await ledger.settle(tenantID: tenant.id, requestID: "r0", cost: LedgerTests.credits("1"), idempotentResponse: nil))
            // r1 and r2 die with the replica: nothing written for them, and no hold row to expire.
            let survivor = store.sqlLedger
            #expect(try await survivor.balance(tenantID: tenant.id).available == LedgerTests.credits("999"))
            #expect(try await store.verify().isEmpty)
            #expect(try await survivor.releaseExpiredHolds(at: Date()) == 0, "not expired yet")
            #expect(
                try await store.verify(at: Date().addingTimeInterval(200)).contains { $0.contains("credit lease(s) past their expiry") })
            #expect(try await survivor.releaseExpiredHolds(at: Date().addingTimeInterval(120)) == 1)
            #expect(try await Self.leases(store).isEmpty)
            #expect(try await Self.count(store, "SELECT balance_micros AS n FROM tenants") == 999_000_000)
            #expect(try await store.verify(at: Date().addingTimeInterval(200)).isEmpty)
        }
    }

    @Test("two replicas leasing one balance never spend more than it, and leave at most a lease each unspent", arguments: Backend.allCases)
    func twoReplicas(backend: Backend) async throws {
        try await Self.withTwoStores(backend) { first, second in
            let tenant = try await first.createTenant(named: "acme")
            _ = try await first.ledger.grant(Grant(tenantID: tenant.id, amount: LedgerTests.credits("600"), requestID: "seed", note: nil))
            let replicas = [first.useCreditLeases(Self.policy), second.useCreditLeases(Self.policy)]
            // Each replica leases before the flood, so most requests hold on a lease.
            for (index, replica) in replicas.enumerated() {
                _ = try await replica.hold(Self.hold(tenant.id, "warm\(index)", "1"))
                #expect(try await replica.release(tenantID: tenant.id, requestID: "warm\(index)"))
            }
            #expect(try await Self.leases(first).count == 2)
            let settled = await withTaskGroup(of: Bool.self) { group in
                for index in 0..<800 {
                    group.addTask {
                        let ledger = replicas[index % 2]
                        guard case .held = try? await ledger.hold(Self.hold(tenant.id, "r\(index)", "1")) else { return false }
                        return
                            (try? await ledger.settle(
                                tenantID: tenant.id, requestID: "r\(index)", cost: LedgerTests.credits("1"), idempotentResponse: nil))
                            == true
                    }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(settled <= 600)
            #expect(settled >= 600 - 2 * 11, "at most a lease and a hold stranded per replica: \(settled)")
            for replica in replicas { await replica.returnAll() }
            #expect(try await Self.leases(first).isEmpty)
            #expect(try await first.ledger.balance(tenantID: tenant.id).available == LedgerTests.credits("\(600 - settled)"))
            #expect(try await first.ledger.usage(tenantID: tenant.id).first?.requests == Int64(settled))
            #expect(try await first.verify().isEmpty)
        }
    }

    @Test("an expired lease spent to the last micro-credit is returned too: its row goes, and it is counted", arguments: Backend.allCases)
    func spentLeaseExpires(backend: Backend) async throws {
        try await LedgerTests.withTenant(backend, balance: "1000") { store, tenant in
            let ledger = store.sqlLedger
            let expiry = Date().addingTimeInterval(60)
            let left = try await ledger.takeLease(
                tenantID: tenant.id, owner: "gone", amount: 1_000_000, minimumBalance: 0, expiresAt: expiry)
            #expect(left == 999_000_000)
            let settlement = LeasedSettlement(
                tenantID: tenant.id, requestID: "all", owner: "gone",
                hold: LocalHold(amount: 1_000_000, model: "m", keyID: nil, expiresAt: expiry), cost: 1_000_000)
            let written = try await ledger.settleLeased(settlement)
            #expect(written)
            #expect(try await Self.leases(store) == ["\(tenant.id)/gone": 0])
            #expect(try await ledger.releaseExpiredHolds(at: Date()) == 0)
            #expect(try await ledger.releaseExpiredHolds(at: Date().addingTimeInterval(120)) == 1)
            #expect(try await Self.leases(store).isEmpty)
            #expect(try await Self.count(store, "SELECT balance_micros AS n FROM tenants") == 999_000_000)
            #expect(try await store.verify(at: Date().addingTimeInterval(200)).isEmpty)
        }
    }

    /// Two stores on one database, as two replicas have.
    static func withTwoStores(_ backend: Backend, _ body: (StateStore, StateStore) async throws -> Void) async throws {
        let logger = Logger(label: "test")
        switch backend {
        case .sqlite:
            let path = SQLiteStoreTests.temporaryPath()
            defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
            try await StateStore.withSQLite(path: path, logger: logger) { first in
                try await StateStore.withSQLite(path: path, logger: logger) { second in try await body(first, second) }
            }
        case .postgres:
            try await PostgresTestServer.withDatabase { url in
                try await StateStore.withPostgres(url: url, logger: logger) { first in
                    try await StateStore.withPostgres(url: url, logger: logger) { second in try await body(first, second) }
                }
            }
        }
    }

    @Test(
        "the set-based batch runs leased settlements beside holds and closes, each with the result it would get alone",
        arguments: Backend.allCases)
    func batch(backend: Backend) async throws {
        try await LedgerTests.withTenant(backend, balance: "1000") { store, tenant in
            let ledger = store.sqlLedger
            let owner = "replica-a"
            #expect(
                try await ledger.takeLease(
                    tenantID: tenant.id, owner: owner, amount: 10_000_000, minimumBalance: 0, expiresAt: Date().addingTimeInterval(60))
                    == 990_000_000)
            _ = try await ledger.hold(Self.hold(tenant.id, "plain", "2", unique: false))
            func leased(_ request: String, held: Int64, cost: Int64, owner: String = owner) -> BatchedLedgerWrite {
                .leasedSettle(
                    LeasedSettlement(
                        tenantID: tenant.id, requestID: request, owner: owner,
                        hold: LocalHold(amount: held, model: "m", keyID: 7, expiresAt: Date().addingTimeInterval(60)), cost: cost))
            }
            let results = try await LedgerTests.runBatch(
                [
                    leased("a", held: 3_000_000, cost: 1_000_000),
                    .settle(tenantID: tenant.id, requestID: "plain", cost: LedgerTests.credits("1")),
                    leased("plain", held: 1_000_000, cost: 1_000_000), leased("b", held: 2_000_000, cost: 2_000_000),
                    .hold(Self.hold(tenant.id, "c", "1", unique: false)),
                ],
                durable: true, on: backend, store)
            #expect(results.count == 5)
            #expect(results[0] as? Bool == true)
            #expect(results[1] as? Bool == true)
            #expect(results[2] as? Bool == false, "a request id billed before")
            #expect(results[3] as? Bool == true)
            #expect((results[4] as? HoldOutcome).map { if case .held = $0 { true } else { false } } == true)
            #expect(try await Self.leases(store) == ["\(tenant.id)/\(owner)": 7_000_000])
            let key = try await store.database.query("SELECT key_id FROM ledger_entries WHERE request_id = 'a' AND phase = 'open'")
            #expect(key.first?.integer("key_id") == 7)
            // Another replica's settlement on a lease it does not have writes nothing.
            let other = try await LedgerTests.runBatch(
                [leased("d", held: 1_000_000, cost: 1_000_000, owner: "replica-b")], durable: true, on: backend, store)
            #expect(other.first as? Bool == false)
            #expect(try await Self.count(store, "SELECT COUNT(*) AS n FROM ledger_entries WHERE request_id = 'd'") == 0)
            // A lease cannot go below zero: the batch fails whole, and nothing of it stays.
            await #expect(throws: (any Error).self) {
                _ = try await LedgerTests.runBatch([leased("e", held: 8_000_000, cost: 8_000_000)], durable: true, on: backend, store)
            }
            #expect(try await Self.count(store, "SELECT COUNT(*) AS n FROM ledger_entries WHERE request_id = 'e'") == 0)
            _ = try await ledger.release(tenantID: tenant.id, requestID: "c")
            #expect(try await store.verify().isEmpty)
            // Write by write (how a failed batch runs again), the same answers.
            let f = LeasedSettlement(
                tenantID: tenant.id, requestID: "f", owner: owner,
                hold: LocalHold(amount: 1_000_000, model: "m", keyID: nil, expiresAt: Date()), cost: 500_000)
            #expect(try await store.database.transaction(durable: true) { try await SQLLedger.settleLeased(f, in: $0) })
            #expect(!(try await store.database.transaction(durable: true) { try await SQLLedger.settleLeased(f, in: $0) }))
            var gone = f
            gone.requestID = "g"
            gone.owner = "replica-b"
            #expect(!(try await store.database.transaction(durable: true) { try await SQLLedger.settleLeased(gone, in: $0) }))
            #expect(try await Self.leases(store) == ["\(tenant.id)/\(owner)": 6_500_000])
            #expect(try await store.verify().isEmpty)
        }
    }
}
