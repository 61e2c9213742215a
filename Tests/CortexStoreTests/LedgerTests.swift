import CortexCore
import Foundation
import Logging
import Testing

@testable import CortexStore

@Suite("Credits ledger on SQLite and PostgreSQL")
struct LedgerTests {
    static func credits(_ text: String) -> Credits {
        guard let credits = Credits(decimal: text) else { preconditionFailure("not a credits amount: \(text)") }
        return credits
    }

    static func hold(_ tenant: Tenant, _ requestID: String, _ amount: String, ttl: TimeInterval = 300, key: Idempotency? = nil) -> Hold {
        Hold(
            tenantID: tenant.id,
            requestID: requestID,
            amount: credits(amount),
            model: "m",
            keyID: nil,
            expiresAt: Date().addingTimeInterval(ttl),
            idempotency: key
        )
    }

    /// A store with one tenant holding `balance` credits.
    static func withTenant(_ backend: Backend, balance: String, _ body: (StateStore, Tenant) async throws -> Void) async throws {
        try await backend.withStore { store in
            let tenant = try await store.createTenant(named: "acme")
            #expect(
                try await store.ledger.grant(Grant(tenantID: tenant.id, amount: credits(balance), requestID: "seed", note: "test"))
                    == .granted(balance: credits(balance))
            )
            try await body(store, tenant)
        }
    }

    /// Runs `writes` as the engine's set-based batch, in a transaction of its own.
    static func runBatch(_ writes: [BatchedLedgerWrite], durable: Bool, on backend: Backend, _ store: StateStore) async throws
        -> [any Sendable]
    {
        switch backend {
        case .postgres: try await PostgresLedgerBatch.run(writes, durable: durable, in: store.database)
        case .sqlite: try await store.database.transaction(durable: durable) { try await SQLiteLedgerBatch.run(writes, in: $0) }
        }
    }

    @Test("the set-based batch gives every write of a batch the result it would get alone", arguments: Backend.allCases)
    func batchStatement(backend: Backend) async throws {
        try await backend.withStore { store in
            let acme = try await store.createTenant(named: "acme")
            let beta = try await store.createTenant(named: "beta")
            for (tenant, balance) in [(acme, "10"), (beta, "5")] {
                _ = try await store.ledger.grant(Grant(tenantID: tenant.id, amount: Self.credits(balance), requestID: "seed", note: nil))
            }
            let unknown = Tenant(id: 999, name: "nobody", createdAt: Date())
            let first = try await Self.runBatch(
                [
                    .hold(Self.hold(acme, "r1", "4")), .hold(Self.hold(acme, "r2", "4")), .hold(Self.hold(acme, "r3", "4")),
                    .hold(Self.hold(beta, "r4", "1")), .hold(Self.hold(unknown, "r5", "1")), .hold(Self.hold(acme, "r1", "1")),
                ],
                durable: false, on: backend, store)
            #expect(
                first.map { $0 as? HoldOutcome } == [
                    .held(balance: Self.credits("6")), .held(balance: Self.credits("2")), .insufficient(balance: Self.credits("2")),
                    .held(balance: Self.credits("4")), .unknownTenant, .duplicateRequest,
                ])
            // Settlements and releases go first: what they return pays for the batch's holds.
            let second = try await Self.runBatch(
                [
                    .settle(tenantID: acme.id, requestID: "r1", cost: Self.credits("3")), .release(tenantID: acme.id, requestID: "r2"),
                    .settle(tenantID: acme.id, requestID: "r9", cost: Self.credits("1")), .hold(Self.hold(acme, "r6", "6")),
                    .hold(Self.hold(acme, "r1", "1")), .settle(tenantID: beta.id, requestID: "r4", cost: Self.credits("1")),
                    .release(tenantID: acme.id, requestID: "r2"),
                ],
                durable: true, on: backend, store)
            #expect(second.prefix(3).map { $0 as? Bool } == [true, true, false])
            #expect(second[3] as? HoldOutcome == .held(balance: Self.credits("1")))
            #expect(second[4] as? HoldOutcome == .duplicateRequest)
            #expect(second[5] as? Bool == true)
            #expect(second[6] as? Bool == false, "a second release of the same request in one batch finds nothing")
            #expect(try await store.ledger.balance(tenantID: acme.id) == Balance(available: Self.credits("1"), held: Self.credits("6")))
            #expect(try await store.ledger.balance(tenantID: beta.id) == Balance(available: Self.credits("4"), held: .zero))
            let kinds = try await store.ledger.entries(tenantID: acme.id, limit: 100, before: nil).map(\.kind)
            #expect(kinds.filter { $0 == .hold }.count == 3 && kinds.contains(.settle) && kinds.contains(.release))
            #expect(try await store.verify().isEmpty)
        }
    }

    @Test("hold, settle and release move the balance and keep it equal to the sum of entries", arguments: Backend.allCases)
    func lifecycle(backend: Backend) async throws {
        try await Self.withTenant(backend, balance: "10") { (store, tenant) async throws in
            let ledger = store.ledger
            #expect(try await ledger.hold(Self.hold(tenant, "r1", "3")) == .held(balance: Self.credits("7")))
            #expect(try await ledger.balance(tenantID: tenant.id) == Balance(available: Self.credits("7"), held: Self.credits("3")))
            #expect(try await ledger.settle(tenantID: tenant.id, requestID: "r1", cost: Self.credits("2.5"), idempotentResponse: nil))
            #expect(try await ledger.balance(tenantID: tenant.id) == Balance(available: Self.credits("7.5"), held: .zero))

            #expect(try await ledger.hold(Self.hold(tenant, "r2", "4")) == .held(balance: Self.credits("3.5")))
            #expect(try await ledger.release(tenantID: tenant.id, requestID: "r2"))
            #expect(try await ledger.balance(tenantID: tenant.id).available == Self.credits("7.5"))

            // Settled or released once: a second settlement or release does nothing.
            #expect(try await !ledger.settle(tenantID: tenant.id, requestID: "r1", cost: .zero, idempotentResponse: nil))
            #expect(try await !ledger.settle(tenantID: tenant.id, requestID: "r2", cost: .zero, idempotentResponse: nil))
            #expect(try await !ledger.release(tenantID: tenant.id, requestID: "r1"))

            let kinds = try await ledger.entries(tenantID: tenant.id, limit: 10, before: nil).map(\.kind)
            #expect(kinds == [.release, .hold, .settle, .hold, .grant])
            let usage = try await ledger.usage(tenantID: tenant.id)
            #expect(usage == [ModelUsage(model: "m", requests: 1, spent: Self.credits("2.5"))])
            #expect(try await store.verify().isEmpty)
        }
    }

    @Test("a hold the balance cannot cover is refused and changes nothing", arguments: Backend.allCases)
    func insufficient(backend: Backend) async throws {
        try await Self.withTenant(backend, balance: "1") { (store, tenant) async throws in
            #expect(try await store.ledger.hold(Self.hold(tenant, "r1", "1.000001")) == .insufficient(balance: Self.credits("1")))
            #expect(try await store.ledger.hold(Self.hold(tenant, "r2", "1")) == .held(balance: .zero))
            #expect(try await store.ledger.hold(Self.hold(tenant, "r3", "0.000001")) == .insufficient(balance: .zero))
            #expect(try await store.ledger.entries(tenantID: tenant.id, limit: 10, before: nil).count == 2)
            #expect(try await store.verify().isEmpty)
        }
    }

    @Test("a request id is held once: a retry cannot charge twice", arguments: Backend.allCases)
    func duplicateRequest(backend: Backend) async throws {
        try await Self.withTenant(backend, balance: "10") { (store, tenant) async throws in
            #expect(try await store.ledger.hold(Self.hold(tenant, "r1", "1")) == .held(balance: Self.credits("9")))
            #expect(try await store.ledger.settle(tenantID: tenant.id, requestID: "r1", cost: Self.credits("1"), idempotentResponse: nil))
            #expect(try await store.ledger.hold(Self.hold(tenant, "r1", "1")) == .duplicateRequest)
            #expect(try await store.ledger.balance(tenantID: tenant.id).available == Self.credits("9"))
            #expect(try await store.verify().isEmpty)
        }
    }

    @Test("1,000 concurrent holds against a balance covering 100: exactly 100 succeed", arguments: Backend.allCases)
    func concurrentHolds(backend: Backend) async throws {
        try await Self.withTenant(backend, balance: "100") { (store, tenant) async throws in
            let ledger = store.ledger
            let outcomes = try await withThrowingTaskGroup(of: HoldOutcome.self) { group in
                for index in 0..<1000 {
                    group.addTask {
                        let outcome = try await ledger.hold(Self.hold(tenant, "r\(index)", "1"))
                        if case .held = outcome {
                            _ = try await ledger.settle(
                                tenantID: tenant.id, requestID: "r\(index)", cost: Self.credits("1"), idempotentResponse: nil)
                        }
                        return outcome
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let held = outcomes.filter { if case .held = $0 { true } else { false } }.count
            let refused = outcomes.filter { if case .insufficient = $0 { true } else { false } }.count
            #expect(held == 100)
            #expect(refused == 900)
            #expect(try await ledger.balance(tenantID: tenant.id) == Balance(available: .zero, held: .zero))
            #expect(try await ledger.usage(tenantID: tenant.id) == [ModelUsage(model: "m", requests: 100, spent: Self.credits("100"))])
            #expect(try await store.verify().isEmpty)
        }
    }

    @Test(
        "an Idempotency-Key replays the first response, refuses a different request and frees itself on release",
        arguments: Backend.allCases)
    func idempotency(backend: Backend) async throws {
        try await Self.withTenant(backend, balance: "10") { (store, tenant) async throws in
            let ledger = store.ledger
            let key = Idempotency(key: "k1", fingerprint: "f1")
            #expect(try await ledger.hold(Self.hold(tenant, "r1", "1", key: key)) == .held(balance: Self.credits("9")))
            // While the first request runs, a retry is told so.
            #expect(try await ledger.hold(Self.hold(tenant, "r2", "1", key: key)) == .idempotentReplay(nil, fingerprintMatches: true))
            let response = StoredResponse(status: 200, body: #"{"score":0.5}"#)
            #expect(try await ledger.settle(tenantID: tenant.id, requestID: "r1", cost: Self.credits("1"), idempotentResponse: response))
            #expect(try await ledger.hold(Self.hold(tenant, "r3", "1", key: key)) == .idempotentReplay(response, fingerprintMatches: true))
            let other = Idempotency(key: "k1", fingerprint: "f2")
            #expect(
                try await ledger.hold(Self.hold(tenant, "r4", "1", key: other)) == .idempotentReplay(response, fingerprintMatches: false))
            #expect(try await ledger.balance(tenantID: tenant.id).available == Self.credits("9"))

            // A failed request releases its key: the retry runs and is charged once.
            let second = Idempotency(key: "k2", fingerprint: "f1")
            #expect(try await ledger.hold(Self.hold(tenant, "r5", "1", key: second)) == .held(balance: Self.credits("8")))
            #expect(try await ledger.release(tenantID: tenant.id, requestID: "r5"))
            #expect(try await ledger.hold(Self.hold(tenant, "r6", "1", key: second)) == .held(balance: Self.credits("8")))
            #expect(try await store.verify().isEmpty)
        }
    }

    @Test(
        "Idempotency-Key records of finished requests expire after IDEMPOTENCY_TTL_S: swept, or forgotten when the key comes back; a running request keeps its key",
        arguments: Backend.allCases)
    func idempotencyExpiry(backend: Backend) async throws {
        try await Self.withTenant(backend, balance: "10") { (store, tenant) async throws in
            let ledger = store.ledger
            let response = StoredResponse(status: 200, body: #"{"score":0.5}"#)
            let done = Idempotency(key: "done", fingerprint: "f")
            let running = Idempotency(key: "running", fingerprint: "f")
            #expect(try await ledger.hold(Self.hold(tenant, "r1", "1", key: done)) == .held(balance: Self.credits("9")))
            #expect(try await ledger.settle(tenantID: tenant.id, requestID: "r1", cost: Self.credits("1"), idempotentResponse: response))
            #expect(try await ledger.hold(Self.hold(tenant, "r2", "1", key: running)) == .held(balance: Self.credits("8")))
            // Within the TTL the sweep keeps both.
            #expect(try await ledger.forgetIdempotencyKeys(olderThan: .seconds(86_400), at: Date()) == 0)
            // A day later: the finished request's key goes; the running one's stays (its hold decides).
            #expect(try await ledger.forgetIdempotencyKeys(olderThan: .seconds(86_400), at: Date().addingTimeInterval(86_401)) == 1)
            #expect(try await ledger.hold(Self.hold(tenant, "r3", "1", key: done)) == .held(balance: Self.credits("7")), "a new request")
            #expect(try await ledger.hold(Self.hold(tenant, "r4", "1", key: running)) == .idempotentReplay(nil, fingerprintMatches: true))
            #expect(try await ledger.release(tenantID: tenant.id, requestID: "r3"))
            // Forgotten when the key comes back past the TTL, before any sweep.
            #expect(try await ledger.settle(tenantID: tenant.id, requestID: "r2", cost: Self.credits("1"), idempotentResponse: response))
            #expect(
                try await ledger.hold(Self.hold(tenant, "r5", "1", key: running)) == .idempotentReplay(response, fingerprintMatches: true))
            store.setIdempotencyTTL(.milliseconds(1))
            try await Task.sleep(for: .milliseconds(20))
            #expect(try await ledger.hold(Self.hold(tenant, "r6", "1", key: running)) == .held(balance: Self.credits("7")), "a new request")
            #expect(try await store.verify().isEmpty)
        }
    }

    @Test("expired holds are released, and verify names holds left open past their expiry", arguments: Backend.allCases)
    func expiry(backend: Backend) async throws {
        try await Self.withTenant(backend, balance: "5") { (store, tenant) async throws in
            let ledger = store.ledger
            #expect(try await ledger.hold(Self.hold(tenant, "old", "2", ttl: -120)) == .held(balance: Self.credits("3")))
            #expect(try await ledger.hold(Self.hold(tenant, "new", "1")) == .held(balance: Self.credits("2")))
            let problems = try await store.verify()
            #expect(problems.count == 1)
            #expect(problems.first?.contains("1 hold(s) open past their expiry") == true)
            #expect(try await ledger.releaseExpiredHolds(at: Date()) == 1)
            #expect(try await ledger.balance(tenantID: tenant.id) == Balance(available: Self.credits("4"), held: Self.credits("1")))
            // The request that held it can no longer settle: nothing is charged for it.
            #expect(try await !ledger.settle(tenantID: tenant.id, requestID: "old", cost: Self.credits("2"), idempotentResponse: nil))
            #expect(try await store.verify().isEmpty)
        }
    }

    @Test("grants add and remove credits, never below zero, once per request id", arguments: Backend.allCases)
    func grants(backend: Backend) async throws {
        try await Self.withTenant(backend, balance: "5") { (store, tenant) async throws in
            let ledger = store.ledger
            #expect(
                try await ledger.grant(Grant(tenantID: tenant.id, amount: Self.credits("-6"), requestID: "g1", note: nil))
                    == .insufficient(balance: Self.credits("5")))
            #expect(
                try await ledger.grant(Grant(tenantID: tenant.id, amount: Self.credits("-5"), requestID: "g1", note: nil))
                    == .granted(balance: .zero))
            #expect(
                try await ledger.grant(Grant(tenantID: tenant.id, amount: Self.credits("3"), requestID: "g1", note: nil))
                    == .duplicateRequest)
            #expect(try await ledger.grant(Grant(tenantID: 999, amount: Self.credits("3"), requestID: "g2", note: nil)) == .unknownTenant)
            #expect(try await ledger.balance(tenantID: tenant.id).available == .zero)
            #expect(try await store.verify().isEmpty)
        }
    }

    @Test("entries are append-only, and verify names a balance that drifted from its entries", arguments: Backend.allCases)
    func drift(backend: Backend) async throws {
        try await Self.withTenant(backend, balance: "5") { (store, tenant) async throws in
            await #expect(throws: (any Error).self) {
                _ = try await store.database.query("UPDATE ledger_entries SET amount_micros = 0")
            }
            await #expect(throws: (any Error).self) {
                _ = try await store.database.query("DELETE FROM ledger_entries")
            }
            _ = try await store.database.query(
                "UPDATE tenants SET balance_micros = balance_micros + 1 WHERE id = $1", [.integer(tenant.id)])
            #expect(try await store.verify() == ["ledger: tenant 'acme' has balance 5.000001 but its entries sum to 5"])
        }
    }

    @Test(
        "a grant that would take the balance, with what is held, past 64-bit micro-credits is refused and changes nothing",
        arguments: Backend.allCases)
    func balanceLimit(backend: Backend) async throws {
        try await Self.withTenant(backend, balance: "1") { (store, tenant) async throws in
            let ledger = store.ledger
            let maximum = Credits.maximumBalance
            // Room for exactly what is left beside the balance of 1.
            let room = try #require(maximum.subtracting(Self.credits("1")))
            #expect(
                try await ledger.grant(Grant(tenantID: tenant.id, amount: room, requestID: "fill", note: nil)) == .granted(balance: maximum)
            )
            #expect(
                try await ledger.grant(Grant(tenantID: tenant.id, amount: Self.credits("0.000001"), requestID: "over", note: nil))
                    == .overLimit(balance: maximum))
            // Holding moves credits out of the balance but they still count: the room stays taken.
            #expect(
                try await ledger.hold(Self.hold(tenant, "r1", "5")) == .held(balance: try #require(maximum.subtracting(Self.credits("5")))))
            #expect(
                try await ledger.grant(Grant(tenantID: tenant.id, amount: Self.credits("1"), requestID: "over-held", note: nil))
                    == .overLimit(balance: try #require(maximum.subtracting(Self.credits("5")))))
            #expect(try await ledger.release(tenantID: tenant.id, requestID: "r1"))
            // Still a whole number, still readable, still consistent; a removal still works.
            #expect(try await ledger.balance(tenantID: tenant.id) == Balance(available: maximum, held: .zero))
            #expect(try await store.verify().isEmpty)
            #expect(
                try await ledger.grant(
                    Grant(tenantID: tenant.id, amount: Credits(microcredits: -maximum.microcredits), requestID: "empty", note: nil))
                    == .granted(balance: .zero))
            #expect(try await store.verify().isEmpty)
        }
    }

    @Test("SQLite refuses a balance stored as a float; one already there is a read error and a verify finding, not a crash")
    func floatBalance() async throws {
        try await Self.withTenant(.sqlite, balance: "5") { (store, tenant) async throws in
            // An integer sum that overflows becomes a float in SQLite: the schema refuses it.
            await #expect(throws: (any Error).self) {
                _ = try await store.database.query(
                    "UPDATE tenants SET balance_micros = balance_micros + 9223372036854775807 WHERE id = $1", [.integer(tenant.id)])
            }
            #expect(try await store.ledger.balance(tenantID: tenant.id).available == Self.credits("5"))
            // A database changed by hand (or by an older Cortex) past the schema's guard.
            _ = try await store.database.query("DROP TRIGGER tenants_balance_integer_update")
            _ = try await store.database.query("UPDATE tenants SET balance_micros = 1e19 WHERE id = $1", [.integer(tenant.id)])
            await #expect {
                _ = try await store.ledger.balance(tenantID: tenant.id)
            } throws: { error in
                "\(error)".contains("column 'balance_micros'") && "\(error)".contains("cortex db verify")
            }
            let problems = try await store.verify()
            #expect(problems.count == 1)
            #expect(problems.first?.contains("tenant 'acme' has balance 1.0e+19 stored as a float") == true, "\(problems)")
        }
    }
}
