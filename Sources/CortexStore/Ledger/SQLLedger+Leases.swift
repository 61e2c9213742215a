import CortexCore
import Foundation

/// A request held on a credit lease, settled: its hold and settlement entries are written
/// together, and its cost comes out of the lease (the tenant's row is not touched).
struct LeasedSettlement: Sendable, Hashable {
    var tenantID: Int64
    var requestID: String
    /// The replica whose lease paid.
    var owner: String
    var hold: LocalHold
    var cost: Int64
}

/// Credit leases in SQL (`credit_leases`: one row per tenant and replica). A lease moves credits
/// out of `tenants.balance_micros` into its row, so a tenant's entries sum to its balance plus
/// its leases; settlements on a lease take their cost from the row.
extension SQLLedger {
    /// Moves `amount` from the tenant's balance into `owner`'s lease, if the balance is at least
    /// `minimumBalance`; returns the balance after, or `nil` when refused (or no such tenant).
    func takeLease(tenantID: Int64, owner: String, amount: Int64, minimumBalance: Int64, expiresAt: Date) async throws -> Int64? {
        // Not durable, as a hold: a lease lost in a crash returns its credits to the balance, and
        // the first settlement on it makes it durable.
        try await writer.submit(tenantID: tenantID, durable: false) { database in
            let taken = try await database.query(
                """
                UPDATE tenants SET balance_micros = balance_micros - $2
                WHERE id = $1 AND balance_micros >= $3 AND balance_micros >= $2 RETURNING balance_micros
                """,
                [.integer(tenantID), .integer(amount), .integer(minimumBalance)]
            )
            guard let balance = taken.first?.integer("balance_micros") else { return nil }
            _ = try await database.query(
                """
                INSERT INTO credit_leases (tenant_id, owner, amount_micros, expires_at_ms) VALUES ($1, $2, $3, $4)
                ON CONFLICT (tenant_id, owner) DO UPDATE
                SET amount_micros = credit_leases.amount_micros + excluded.amount_micros, expires_at_ms = excluded.expires_at_ms
                """,
                [.integer(tenantID), .text(owner), .integer(amount), .integer(Int64(expiresAt.millisecondsSince1970))]
            )
            return balance
        }
    }

    /// Writes a leased request's hold and settlement and takes its cost from the lease, durably.
    /// Returns `false`, writing nothing, when the request id was billed before or the lease is gone.
    func settleLeased(_ settlement: LeasedSettlement) async throws -> Bool {
        try await writer.submit(tenantID: settlement.tenantID, durable: true, batched: .leasedSettle(settlement)) { database in
            try await Self.settleLeased(settlement, in: database)
        }
    }

    static func settleLeased(_ settlement: LeasedSettlement, in database: any SQLDatabase) async throws -> Bool {
        let tenant = SQLValue.integer(settlement.tenantID)
        let request = SQLValue.text(settlement.requestID)
        let owner = SQLValue.text(settlement.owner)
        let spent = try await database.query(
            "UPDATE credit_leases SET amount_micros = amount_micros - $3 WHERE tenant_id = $1 AND owner = $2 RETURNING amount_micros",
            [tenant, owner, .integer(settlement.cost)]
        )
        guard !spent.isEmpty else { return false }
        let now = SQLValue.integer(Int64(Date().millisecondsSince1970))
        let hold = settlement.hold
        let entry = try await database.query(
            """
            INSERT INTO ledger_entries (tenant_id, request_id, phase, kind, amount_micros, model, key_id, created_at_ms)
            VALUES ($1, $2, 'open', 'hold', $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id
            """,
            [tenant, request, .integer(-hold.amount), .text(hold.model), .integer(hold.keyID), now]
        )
        guard !entry.isEmpty else {
            // Billed before: give the cost back to the lease inside this same transaction.
            _ = try await database.query(
                "UPDATE credit_leases SET amount_micros = amount_micros + $3 WHERE tenant_id = $1 AND owner = $2",
                [tenant, owner, .integer(settlement.cost)]
            )
            return false
        }
        _ = try await database.query(
            """
            INSERT INTO ledger_entries (tenant_id, request_id, phase, kind, amount_micros, created_at_ms)
            VALUES ($1, $2, 'close', 'settle', $3, $4)
            """,
            [tenant, request, .integer(max(hold.amount - settlement.cost, 0)), now]
        )
        return true
    }

    /// Moves what is left of `owner`'s lease back into the tenant's balance; returns how much.
    @discardableResult
    func returnLease(tenantID: Int64, owner: String) async throws -> Int64 {
        try await writer.submit(tenantID: tenantID, durable: false) { database in
            try await Self.returnLease(tenantID: tenantID, owner: owner, expiredBy: nil, in: database) ?? 0
        }
    }

    /// Deletes the lease row (if it expired by `time`, when given) and credits what it held;
    /// returns that amount, or `nil` when there was no such row.
    private static func returnLease(tenantID: Int64, owner: String, expiredBy time: Int64?, in database: any SQLDatabase) async throws
        -> Int64?
    {
        let taken = try await database.query(
            "DELETE FROM credit_leases WHERE tenant_id = $1 AND owner = $2 AND expires_at_ms <= $3 RETURNING amount_micros",
            [.integer(tenantID), .text(owner), .integer(time ?? Int64.max)]
        )
        guard let amount = taken.first?.integer("amount_micros") else { return nil }
        if amount > 0 {
            _ = try await database.query(
                "UPDATE tenants SET balance_micros = balance_micros + $2 WHERE id = $1", [.integer(tenantID), .integer(amount)])
        }
        return amount
    }

    /// Pushes the expiry of every lease of `owner` to `expiresAt`.
    func renewLeases(owner: String, expiresAt: Date) async throws {
        try await writer.submit(tenantID: 0, durable: false) { database in
            _ = try await database.query(
                "UPDATE credit_leases SET expires_at_ms = $2 WHERE owner = $1",
                [.text(owner), .integer(Int64(expiresAt.millisecondsSince1970))]
            )
        }
    }

    /// Returns every lease whose expiry is at or before `time` (its replica died); returns how many.
    func returnExpiredLeases(at time: Date) async throws -> Int {
        let now = Int64(time.millisecondsSince1970)
        let expired = try await reader.query(
            "SELECT tenant_id, owner FROM credit_leases WHERE expires_at_ms <= $1 ORDER BY tenant_id", [.integer(now)])
        var returned = 0
        for row in expired {
            guard let tenantID = row.integer("tenant_id"), let owner = row.text("owner") else { continue }
            // Through the writer, which re-checks the expiry: a lease renewed meanwhile stays.
            let found = try await writer.submit(tenantID: tenantID, durable: false) { database in
                // A lease spent to nothing is returned too: its row goes.
                try await Self.returnLease(tenantID: tenantID, owner: owner, expiredBy: now, in: database) != nil
            }
            if found { returned += 1 }
        }
        return returned
    }
}
