import CortexCore
import Foundation
import Synchronization

/// The ledger in SQL, the same statements on SQLite and PostgreSQL.
///
/// Tables (see the migrations): `tenants.balance_micros` (never negative, by a CHECK),
/// `ledger_entries` (append-only, unique per tenant, request id and phase: one hold, one
/// settlement or release, per request), `open_holds` (holds not yet settled or released, with
/// their expiry) and `idempotency_keys` (a client's key, its request and, once settled, the response).
///
/// Writes go through a ``GroupCommitter``; reads go straight to the database.
final class SQLLedger: Ledger {
    let writer: GroupCommitter
    let reader: any SQLDatabase

    /// How long a finished request's `Idempotency-Key` is remembered (`IDEMPOTENCY_TTL_S`), in milliseconds.
    private let idempotencyTTL = Atomic<Int64>(86_400_000)

    init(writer: GroupCommitter, reader: any SQLDatabase) {
        self.writer = writer
        self.reader = reader
    }

    /// Sets how long a finished request's `Idempotency-Key` is remembered: a key older than this
    /// is a new request, even before the sweep forgets it.
    func setIdempotencyTTL(_ ttl: Duration) {
        idempotencyTTL.store(Int64(ttl.inSeconds * 1000), ordering: .relaxed)
    }

    func hold(_ hold: Hold) async throws -> HoldOutcome {
        precondition(hold.amount > .zero, "a hold must be positive")
        // Not durable: if the process dies, an unsynced hold is lost with its request, which
        // never answered 200; the settlement's durable commit makes the hold durable too.
        let batched = hold.idempotency == nil ? BatchedLedgerWrite.hold(hold) : nil
        let ttl = idempotencyTTL.load(ordering: .relaxed)
        return try await writer.submit(tenantID: hold.tenantID, durable: false, batched: batched) { database in
            try await Self.hold(hold, idempotencyTTL: ttl, in: database)
        }
    }

    private static func hold(_ hold: Hold, idempotencyTTL: Int64, in database: any SQLDatabase) async throws -> HoldOutcome {
        if database.dialect == .postgres, hold.idempotency == nil {
            return try await postgresHold(hold, in: database)
        }
        let tenant = SQLValue.integer(hold.tenantID)
        let amount = SQLValue.integer(hold.amount.microcredits)
        let request = SQLValue.text(hold.requestID)
        let now = Date().millisecondsSince1970
        if let idempotency = hold.idempotency {
            // A finished request's key past IDEMPOTENCY_TTL_S is forgotten now, whether or not
            // the sweep has come by: this request is a new one.
            _ = try await database.query(
                """
                DELETE FROM idempotency_keys
                WHERE tenant_id = $1 AND idempotency_key = $2 AND created_at_ms <= $3 AND response_status IS NOT NULL
                """,
                [tenant, .text(idempotency.key), .integer(Int64(now) - idempotencyTTL)]
            )
            // Claimed first, so two requests racing with one key cannot both be held.
            let claimed = try await database.query(
                """
                INSERT INTO idempotency_keys (tenant_id, idempotency_key, request_id, fingerprint, created_at_ms)
                VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING tenant_id
                """,
                [tenant, .text(idempotency.key), request, .text(idempotency.fingerprint), .integer(Int64(now))]
            )
            if claimed.isEmpty {
                let rows = try await database.query(
                    """
                    SELECT fingerprint, response_status, response_body FROM idempotency_keys
                    WHERE tenant_id = $1 AND idempotency_key = $2
                    """,
                    [tenant, .text(idempotency.key)]
                )
                let row = rows.first
                let response = row.flatMap { row in
                    row.integer("response_status").map { StoredResponse(status: Int($0), body: row.text("response_body") ?? "") }
                }
                return .idempotentReplay(response, fingerprintMatches: row?.text("fingerprint") == idempotency.fingerprint)
            }
        }
        func forgetIdempotencyKey() async throws {
            guard let idempotency = hold.idempotency else { return }
            _ = try await database.query(
                "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND idempotency_key = $2",
                [tenant, .text(idempotency.key)]
            )
        }
        let debited = try await database.query(
            """
            UPDATE tenants SET balance_micros = balance_micros - $2
            WHERE id = $1 AND balance_micros >= $2 RETURNING balance_micros
            """,
            [tenant, amount]
        )
        guard let balance = debited.first?.integer("balance_micros") else {
            try await forgetIdempotencyKey()
            let rows = try await database.query("SELECT balance_micros FROM tenants WHERE id = $1", [tenant])
            guard let balance = rows.first?.integer("balance_micros") else { return .unknownTenant }
            return .insufficient(balance: Credits(microcredits: balance))
        }
        let entry = try await database.query(
            """
            INSERT INTO ledger_entries (tenant_id, request_id, phase, kind, amount_micros, model, key_id, created_at_ms)
            VALUES ($1, $2, 'open', 'hold', $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id
            """,
            [tenant, request, .integer(-hold.amount.microcredits), .text(hold.model), .integer(hold.keyID), .integer(Int64(now))]
        )
        guard !entry.isEmpty else {
            // This request id was billed before: undo the debit inside this same transaction.
            _ = try await database.query("UPDATE tenants SET balance_micros = balance_micros + $2 WHERE id = $1", [tenant, amount])
            try await forgetIdempotencyKey()
            return .duplicateRequest
        }
        _ = try await database.query(
            "INSERT INTO open_holds (tenant_id, request_id, amount_micros, expires_at_ms) VALUES ($1, $2, $3, $4)",
            [tenant, request, amount, .integer(Int64(hold.expiresAt.millisecondsSince1970))]
        )
        return .held(balance: Credits(microcredits: balance))
    }

    func settle(tenantID: Int64, requestID: String, cost: Credits, idempotentResponse: StoredResponse?) async throws -> Bool {
        precondition(cost >= .zero, "a cost cannot be negative")
        let batched = idempotentResponse == nil ? BatchedLedgerWrite.settle(tenantID: tenantID, requestID: requestID, cost: cost) : nil
        return try await writer.submit(tenantID: tenantID, durable: true, batched: batched) { database in
            let tenant = SQLValue.integer(tenantID)
            let request = SQLValue.text(requestID)
            if database.dialect == .postgres {
                return try await Self.postgresSettle(tenantID: tenantID, requestID: requestID, cost: cost, idempotentResponse, in: database)
            }
            // Taking the open hold is the claim: a release (or a second settlement) racing with this one finds nothing.
            let taken = try await database.query(
                "DELETE FROM open_holds WHERE tenant_id = $1 AND request_id = $2 RETURNING amount_micros",
                [tenant, request]
            )
            guard let held = taken.first?.integer("amount_micros") else { return false }
            // Charging more than was held would need a new hold; the caller's estimate was wrong.
            let refund = max(held - cost.microcredits, 0)
            _ = try await database.query(
                """
                INSERT INTO ledger_entries (tenant_id, request_id, phase, kind, amount_micros, created_at_ms)
                VALUES ($1, $2, 'close', 'settle', $3, $4)
                """,
                [tenant, request, .integer(refund), .integer(Int64(Date().millisecondsSince1970))]
            )
            if refund > 0 {
                _ = try await database.query(
                    "UPDATE tenants SET balance_micros = balance_micros + $2 WHERE id = $1", [tenant, .integer(refund)])
            }
            try await Self.store(idempotentResponse, tenantID: tenantID, requestID: requestID, in: database)
            return true
        }
    }

    /// Keeps a settled request's response for retries with its `Idempotency-Key`.
    private static func store(_ response: StoredResponse?, tenantID: Int64, requestID: String, in database: any SQLDatabase) async throws {
        guard let response else { return }
        _ = try await database.query(
            "UPDATE idempotency_keys SET response_status = $3, response_body = $4 WHERE tenant_id = $1 AND request_id = $2",
            [.integer(tenantID), .text(requestID), .integer(Int64(response.status)), .text(response.body)]
        )
    }

    func release(tenantID: Int64, requestID: String) async throws -> Bool {
        try await writer.submit(tenantID: tenantID, durable: true, batched: .release(tenantID: tenantID, requestID: requestID)) {
            database in
            try await Self.release(tenantID: tenantID, requestID: requestID, in: database)
        }
    }

    /// ``hold(_:)`` in one PostgreSQL statement (one round trip instead of three): the same
    /// debit, entry and open hold, each step feeding the next through a data-modifying CTE.
    /// A request id held before is seen by `NOT EXISTS`; one held at the same moment by another
    /// replica makes the entry's unique index fail the statement, so it is never charged twice.
    private static func postgresHold(_ hold: Hold, in database: any SQLDatabase) async throws -> HoldOutcome {
        let rows = try await database.query(
            """
            WITH debit AS (
                UPDATE tenants SET balance_micros = balance_micros - $3
                WHERE id = $1 AND balance_micros >= $3
                    AND NOT EXISTS (SELECT 1 FROM ledger_entries WHERE tenant_id = $1 AND request_id = $2 AND phase = 'open')
                RETURNING balance_micros
            ), entry AS (
                INSERT INTO ledger_entries (tenant_id, request_id, phase, kind, amount_micros, model, key_id, created_at_ms)
                SELECT $1, $2, 'open', 'hold', -$3, $4, $5, $6 FROM debit RETURNING id
            ), opened AS (
                INSERT INTO open_holds (tenant_id, request_id, amount_micros, expires_at_ms)
                SELECT $1, $2, $3, $7 FROM debit RETURNING request_id
            )
            SELECT (SELECT balance_micros FROM debit) AS held_balance,
                (SELECT balance_micros FROM tenants WHERE id = $1) AS balance,
                (SELECT COUNT(*) FROM ledger_entries WHERE tenant_id = $1 AND request_id = $2 AND phase = 'open') AS earlier
            """,
            [
                .integer(hold.tenantID), .text(hold.requestID), .integer(hold.amount.microcredits), .text(hold.model),
                .integer(hold.keyID), .integer(Int64(Date().millisecondsSince1970)),
                .integer(Int64(hold.expiresAt.millisecondsSince1970)),
            ]
        )
        let row = rows.first
        if let balance = row?.integer("held_balance") { return .held(balance: Credits(microcredits: balance)) }
        if (row?.integer("earlier") ?? 0) > 0 { return .duplicateRequest }
        guard let balance = row?.integer("balance") else { return .unknownTenant }
        return .insufficient(balance: Credits(microcredits: balance))
    }

    /// ``settle(tenantID:requestID:cost:idempotentResponse:)`` in one PostgreSQL statement: take the
    /// open hold, write the settlement, return what was not spent.
    private static func postgresSettle(
        tenantID: Int64,
        requestID: String,
        cost: Credits,
        _ response: StoredResponse?,
        in database: any SQLDatabase
    ) async throws -> Bool {
        let rows = try await database.query(
            """
            WITH taken AS (
                DELETE FROM open_holds WHERE tenant_id = $1 AND request_id = $2 RETURNING amount_micros
            ), entry AS (
                INSERT INTO ledger_entries (tenant_id, request_id, phase, kind, amount_micros, created_at_ms)
                SELECT $1, $2, 'close', 'settle', GREATEST(amount_micros - $3, 0), $4 FROM taken RETURNING amount_micros
            ), refund AS (
                UPDATE tenants SET balance_micros = tenants.balance_micros + entry.amount_micros
                FROM entry WHERE tenants.id = $1 AND entry.amount_micros > 0 RETURNING tenants.id
            )
            SELECT amount_micros FROM taken
            """,
            [.integer(tenantID), .text(requestID), .integer(cost.microcredits), .integer(Int64(Date().millisecondsSince1970))]
        )
        guard !rows.isEmpty else { return false }
        try await store(response, tenantID: tenantID, requestID: requestID, in: database)
        return true
    }

    private static func release(tenantID: Int64, requestID: String, in database: any SQLDatabase) async throws -> Bool {
        let tenant = SQLValue.integer(tenantID)
        let request = SQLValue.text(requestID)
        let taken = try await database.query(
            "DELETE FROM open_holds WHERE tenant_id = $1 AND request_id = $2 RETURNING amount_micros",
            [tenant, request]
        )
        guard let held = taken.first?.integer("amount_micros") else { return false }
        _ = try await database.query(
            """
            INSERT INTO ledger_entries (tenant_id, request_id, phase, kind, amount_micros, created_at_ms)
            VALUES ($1, $2, 'close', 'release', $3, $4)
            """,
            [tenant, request, .integer(held), .integer(Int64(Date().millisecondsSince1970))]
        )
        _ = try await database.query("UPDATE tenants SET balance_micros = balance_micros + $2 WHERE id = $1", [tenant, .integer(held)])
        // A request that failed leaves its key free, so the client's retry can run.
        _ = try await database.query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND request_id = $2", [tenant, request])
        return true
    }

    func grant(_ grant: Grant) async throws -> GrantOutcome {
        try await writer.submit(tenantID: grant.tenantID, durable: true) { database in
            let tenant = SQLValue.integer(grant.tenantID)
            let micros = grant.amount.microcredits
            let amount = SQLValue.integer(micros)
            // No sum in SQL may overflow 64 bits (SQLite would store it as a float): a removal
            // needs the balance to cover it; an addition needs room for it beside the balance and
            // what is held, which holds return to the balance when they settle or release.
            let changed =
                micros < 0
                ? try await database.query(
                    """
                    UPDATE tenants SET balance_micros = balance_micros + $2
                    WHERE id = $1 AND balance_micros >= $3 RETURNING balance_micros
                    """,
                    [tenant, amount, .integer(-micros)]
                )
                : try await database.query(
                    """
                    UPDATE tenants SET balance_micros = balance_micros + $2
                    WHERE id = $1 AND balance_micros
                        <= $3 - (SELECT COALESCE(SUM(amount_micros), 0) FROM open_holds WHERE tenant_id = $1)
                            - (SELECT COALESCE(SUM(amount_micros), 0) FROM credit_leases WHERE tenant_id = $1)
                    RETURNING balance_micros
                    """,
                    [tenant, amount, .integer(Credits.maximumBalance.microcredits - micros)]
                )
            guard let balance = changed.first?.integer("balance_micros") else {
                let rows = try await database.query("SELECT balance_micros FROM tenants WHERE id = $1", [tenant])
                guard let balance = rows.first?.integer("balance_micros") else { return .unknownTenant }
                return micros < 0
                    ? .insufficient(balance: Credits(microcredits: balance)) : .overLimit(balance: Credits(microcredits: balance))
            }
            let entry = try await database.query(
                """
                INSERT INTO ledger_entries (tenant_id, request_id, phase, kind, amount_micros, note, created_at_ms)
                VALUES ($1, $2, 'grant', 'grant', $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id
                """,
                [tenant, .text(grant.requestID), amount, .text(grant.note), .integer(Int64(Date().millisecondsSince1970))]
            )
            guard !entry.isEmpty else {
                _ = try await database.query("UPDATE tenants SET balance_micros = balance_micros - $2 WHERE id = $1", [tenant, amount])
                return .duplicateRequest
            }
            return .granted(balance: Credits(microcredits: balance))
        }
    }

    func balance(tenantID: Int64) async throws -> Balance {
        let rows = try await reader.query(
            """
            SELECT balance_micros, (SELECT COALESCE(SUM(amount_micros), 0) FROM credit_leases WHERE tenant_id = $1) AS leased_micros,
                (SELECT COALESCE(SUM(amount_micros), 0) FROM open_holds WHERE tenant_id = $1) AS held_micros
            FROM tenants WHERE id = $1
            """,
            [.integer(tenantID)]
        )
        // Leased credits are the tenant's until spent: what replicas hold on them in memory is
        // taken out by ``LeasingLedger`` (this replica's; another's shows once settled).
        return Balance(
            available: Credits(microcredits: (rows.first?.integer("balance_micros") ?? 0) &+ (rows.first?.integer("leased_micros") ?? 0)),
            held: Credits(microcredits: rows.first?.integer("held_micros") ?? 0),
            leased: Credits(microcredits: rows.first?.integer("leased_micros") ?? 0)
        )
    }

    func entries(tenantID: Int64, limit: Int, before: Int64?) async throws -> [LedgerEntry] {
        let rows = try await reader.query(
            """
            SELECT id, tenant_id, request_id, kind, amount_micros, model, note, created_at_ms FROM ledger_entries
            WHERE tenant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3
            """,
            [.integer(tenantID), .integer(before ?? Int64.max), .integer(Int64(max(limit, 0)))]
        )
        return rows.map { row in
            LedgerEntry(
                id: row.integer("id") ?? 0,
                tenantID: row.integer("tenant_id") ?? 0,
                requestID: row.text("request_id") ?? "",
                kind: LedgerEntry.Kind(rawValue: row.text("kind") ?? "") ?? .grant,
                amount: Credits(microcredits: row.integer("amount_micros") ?? 0),
                model: row.text("model"),
                note: row.text("note"),
                createdAt: Date(millisecondsSince1970: Int(row.integer("created_at_ms") ?? 0))
            )
        }
    }

    func usage(tenantID: Int64) async throws -> [ModelUsage] {
        let rows = try await reader.query(
            """
            SELECT h.model AS model, COUNT(*) AS requests, SUM(h.amount_micros + s.amount_micros) AS net_micros
            FROM ledger_entries h JOIN ledger_entries s
                ON s.tenant_id = h.tenant_id AND s.request_id = h.request_id AND s.phase = 'close' AND s.kind = 'settle'
            WHERE h.tenant_id = $1 AND h.phase = 'open'
            GROUP BY h.model ORDER BY h.model
            """,
            [.integer(tenantID)]
        )
        return rows.map { row in
            ModelUsage(
                model: row.text("model") ?? "",
                requests: row.integer("requests") ?? 0,
                spent: Credits(microcredits: -(row.integer("net_micros") ?? 0))
            )
        }
    }

    func releaseExpiredHolds(at time: Date) async throws -> Int {
        let expired = try await reader.query(
            "SELECT tenant_id, request_id FROM open_holds WHERE expires_at_ms <= $1 ORDER BY tenant_id",
            [.integer(Int64(time.millisecondsSince1970))]
        )
        var released = 0
        for row in expired {
            guard let tenantID = row.integer("tenant_id"), let requestID = row.text("request_id") else { continue }
            // Each through the writer, which re-checks that the hold is still open.
            if try await release(tenantID: tenantID, requestID: requestID) { released += 1 }
        }
        return released + (try await returnExpiredLeases(at: time))
    }

    func forgetIdempotencyKeys(olderThan ttl: Duration, at time: Date) async throws -> Int {
        let cutoff = Int64(time.millisecondsSince1970) - Int64(ttl.inSeconds * 1000)
        // Through the writer; a request still running (no response stored) keeps its key.
        return try await writer.submit(tenantID: 0, durable: false) { database in
            try await database.query(
                "DELETE FROM idempotency_keys WHERE created_at_ms <= $1 AND response_status IS NOT NULL RETURNING tenant_id",
                [.integer(cutoff)]
            ).count
        }
    }

    func verify(at time: Date, slack: Duration) async throws -> [String] {
        let stuckBefore = Int64(time.millisecondsSince1970) - Int64(slack.components.seconds * 1000)
        // Through the writer: one transaction, so every check sees the same state.
        return try await writer.submit(tenantID: 0, durable: false) { database in
            // The writer's PostgreSQL connections plan without sequential scans (every ledger
            // write finds its rows by key); these checks read whole tables, so they may.
            if database.dialect == .postgres { _ = try await database.query("SET LOCAL enable_seqscan = on") }
            // A balance that is not a whole number of micro-credits (written outside Cortex, or by
            // a version that let a sum overflow into a float) cannot be read: name it and stop there.
            if database.dialect == .sqlite {
                let corrupt = try await database.query(
                    "SELECT name, CAST(balance_micros AS TEXT) AS stored FROM tenants WHERE typeof(balance_micros) <> 'integer' ORDER BY name"
                )
                if !corrupt.isEmpty {
                    return corrupt.map { row in
                        "ledger: tenant '\(row.text("name") ?? "?")' has balance \(row.text("stored") ?? "?") stored as a float, "
                            + "not whole micro-credits: restore the database from a backup (docs/operations.md)"
                    }
                }
            }
            var problems: [String] = []
            // Each tenant's entries summed in the order they were written: the running sum is the
            // balance's history, which never leaves 64 bits, where a plain SUM in any order could
            // (a grant near the limit, then a release before its hold) and SQLite would fail.
            // Credits leased to replicas left the balance but are still the tenant's.
            for row in try await database.query(
                """
                SELECT t.name AS name, t.balance_micros + COALESCE(l.leased, 0) AS balance, COALESCE(s.total, 0) AS total
                FROM tenants t
                LEFT JOIN (SELECT tenant_id, SUM(amount_micros) AS leased FROM credit_leases GROUP BY tenant_id) AS l
                    ON l.tenant_id = t.id
                LEFT JOIN (
                    SELECT tenant_id, total FROM (
                        SELECT tenant_id, SUM(amount_micros) OVER (PARTITION BY tenant_id ORDER BY id) AS total,
                            ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY id DESC) AS newest
                        FROM ledger_entries
                    ) AS running WHERE newest = 1
                ) AS s ON s.tenant_id = t.id
                WHERE t.balance_micros + COALESCE(l.leased, 0) <> COALESCE(s.total, 0)
                ORDER BY t.name
                """
            ) {
                let balance = Credits(microcredits: row.integer("balance") ?? 0)
                let total = Credits(microcredits: row.integer("total") ?? 0)
                problems.append("ledger: tenant '\(row.text("name") ?? "?")' has balance \(balance) but its entries sum to \(total)")
            }
            for row in try await database.query(
                """
                SELECT c.request_id AS request_id, c.kind AS kind FROM ledger_entries c
                WHERE c.phase = 'close' AND NOT EXISTS (
                    SELECT 1 FROM ledger_entries h WHERE h.tenant_id = c.tenant_id AND h.request_id = c.request_id AND h.phase = 'open')
                ORDER BY c.id
                """
            ) {
                problems.append("ledger: \(row.text("kind") ?? "?") of request '\(row.text("request_id") ?? "?")' has no hold")
            }
            for row in try await database.query(
                """
                SELECT h.request_id AS request_id, h.amount_micros AS held, c.kind AS kind, c.amount_micros AS closed
                FROM ledger_entries h JOIN ledger_entries c
                    ON c.tenant_id = h.tenant_id AND c.request_id = h.request_id AND c.phase = 'close'
                WHERE h.phase = 'open' AND (h.amount_micros >= 0 OR c.amount_micros < 0 OR c.amount_micros > -h.amount_micros
                    OR (c.kind = 'release' AND c.amount_micros <> -h.amount_micros))
                ORDER BY h.id
                """
            ) {
                problems.append(
                    "ledger: request '\(row.text("request_id") ?? "?")' held \(Credits(microcredits: row.integer("held") ?? 0)) "
                        + "but its \(row.text("kind") ?? "?") returned \(Credits(microcredits: row.integer("closed") ?? 0))"
                )
            }
            for row in try await database.query(
                """
                SELECT h.request_id AS request_id FROM ledger_entries h
                WHERE h.phase = 'open'
                    AND NOT EXISTS (SELECT 1 FROM ledger_entries c
                        WHERE c.tenant_id = h.tenant_id AND c.request_id = h.request_id AND c.phase = 'close')
                    AND NOT EXISTS (SELECT 1 FROM open_holds o WHERE o.tenant_id = h.tenant_id AND o.request_id = h.request_id)
                ORDER BY h.id
                """
            ) {
                problems.append("ledger: hold of request '\(row.text("request_id") ?? "?")' was never settled or released")
            }
            for row in try await database.query(
                """
                SELECT o.request_id AS request_id FROM open_holds o
                WHERE NOT EXISTS (SELECT 1 FROM ledger_entries h
                        WHERE h.tenant_id = o.tenant_id AND h.request_id = o.request_id AND h.phase = 'open')
                    OR EXISTS (SELECT 1 FROM ledger_entries c
                        WHERE c.tenant_id = o.tenant_id AND c.request_id = o.request_id AND c.phase = 'close')
                ORDER BY o.request_id
                """
            ) {
                problems.append("ledger: open hold of request '\(row.text("request_id") ?? "?")' does not match its entries")
            }
            // Rows past their expiry (with the slack): a running server's sweep would have closed them.
            for (table, what, fix) in [
                ("open_holds", "hold(s) open", "a running server releases them"),
                ("credit_leases", "credit lease(s)", "a running server returns them"),
            ] {
                let stale = try await database.query(
                    "SELECT COUNT(*) AS count, MIN(expires_at_ms) AS oldest FROM \(table) WHERE expires_at_ms < $1",
                    [.integer(stuckBefore)]
                )
                if let count = stale.first?.integer("count"), count > 0 {
                    let oldest = Date(millisecondsSince1970: Int(stale.first?.integer("oldest") ?? 0))
                    problems.append(
                        "ledger: \(count) \(what) past their expiry (oldest expired \(oldest.ISO8601Format())); "
                            + "\(fix), or run `cortex credits release-expired`"
                    )
                }
            }
            return problems
        }
    }
}
