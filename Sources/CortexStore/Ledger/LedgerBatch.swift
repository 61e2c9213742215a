import CortexCore
import Foundation

/// A ledger write that PostgreSQL runs together with the rest of its batch in one statement.
///
/// Holds without an `Idempotency-Key`, settlements without a stored response, and releases: the
/// writes every billed request makes. The others (grants, idempotent holds and settlements) run
/// one by one, as on SQLite.
enum BatchedLedgerWrite: Sendable {
    case hold(Hold)
    case settle(tenantID: Int64, requestID: String, cost: Credits)
    case release(tenantID: Int64, requestID: String)
    /// A hold made on a credit lease, settled: both its entries, its cost from the lease.
    case leasedSettle(LeasedSettlement)
}

/// A group commit's plain holds, settlements and releases in one PostgreSQL statement: one
/// round trip and one commit for the whole batch, each tenant's row locked once (in id order,
/// so replicas cannot deadlock) and updated once, whatever the number of its writes.
///
/// The statement keeps every rule of the write-by-write path:
/// - settlements and releases go first, so what they return can pay for the batch's holds;
/// - a tenant's holds are admitted in the order they were queued while their running sum fits
///   the balance (the first one that does not fit, and every one after it, is refused: a batch
///   never admits a later, smaller hold past a refused one);
/// - a request id held before (or at the same moment by another replica) is a duplicate: the
///   entries' unique index turns its insert into nothing (`ON CONFLICT DO NOTHING`), so the
///   ever-growing entries table is only ever reached through that index, whatever plan
///   PostgreSQL caches; a request id twice in one batch is held once, the later one a duplicate.
///   A duplicate's amount still counts in its tenant's running sum, so it can only make a later
///   hold of the batch refused, never an overspend;
/// - the tenants' `CHECK (balance_micros >= 0)` is the last guard: no plan can overspend.
///
/// A batch with no durable write (holds only) commits with `synchronous_commit` off for this
/// transaction alone, as the write-by-write path does with `SET LOCAL`.
enum PostgresLedgerBatch {
    /// Runs `writes` in one statement on `database` and returns each write's result, in order:
    /// a ``HoldOutcome`` for a hold, a `Bool` (found and closed) for a settlement or release.
    static func run(_ writes: [BatchedLedgerWrite], durable: Bool, in database: any SQLDatabase) async throws -> [any Sendable] {
        var holds = HoldColumns()
        var closes = CloseColumns()
        var leased = LeasedColumns()
        /// Where each write's result is: its side (0 hold, 1 close, 2 leased settlement) and its position there.
        var places: [(side: Int, index: Int)] = []
        places.reserveCapacity(writes.count)
        for write in writes {
            switch write {
            case .hold(let hold):
                places.append((0, holds.tenants.count))
                holds.append(hold)
            case .settle(let tenantID, let requestID, let cost):
                places.append((1, closes.tenants.count))
                closes.append(tenantID: tenantID, requestID: requestID, cost: cost.microcredits)
            case .release(let tenantID, let requestID):
                places.append((1, closes.tenants.count))
                closes.append(tenantID: tenantID, requestID: requestID, cost: -1)
            case .leasedSettle(let settlement):
                guard leased.owner == nil || leased.owner == settlement.owner else {
                    throw StoreFailure(reason: "one batch settles on one replica's leases")
                }
                places.append((2, leased.tenants.count))
                leased.append(settlement)
            }
        }
        guard let database = database as? any PreparedStatementRunner else {
            throw StoreFailure(reason: "the ledger's batch statement runs on PostgreSQL only")
        }
        let rows = try await database.prepared(
            PreparedLedgerBatch(binds: [
                .integer(Int64(Date().millisecondsSince1970)), .text(durable ? "on" : "off"),
                .integers(holds.tenants), .texts(holds.requests), .integers(holds.amounts), .texts(holds.models),
                .integers(holds.keys), .integers(holds.expiries),
                .integers(closes.tenants), .texts(closes.requests), .integers(closes.costs),
                .integers(leased.tenants), .texts(leased.requests), .integers(leased.held), .integers(leased.costs),
                .texts(leased.models), .integers(leased.keys), .text(leased.owner ?? ""),
            ]))
        var holdResults = [HoldOutcome?](repeating: nil, count: holds.tenants.count)
        var closeResults = [Bool?](repeating: nil, count: closes.tenants.count)
        var leasedResults = [Bool?](repeating: nil, count: leased.tenants.count)
        for row in rows {
            guard let side = row.integer("side"), let ordinal = row.integer("ord"), let outcome = row.integer("outcome") else {
                throw StoreFailure(reason: "the ledger's batch statement answered a row without its columns")
            }
            let index = Int(ordinal) - 1
            if side == 0, holdResults.indices.contains(index) {
                let balance = Credits(microcredits: row.integer("balance") ?? 0)
                holdResults[index] =
                    switch outcome {
                    case 0: .held(balance: balance)
                    case 1: .insufficient(balance: balance)
                    case 2: .duplicateRequest
                    default: .unknownTenant
                    }
            } else if side == 1, closeResults.indices.contains(index) {
                closeResults[index] = outcome == 0
            } else if side == 2, leasedResults.indices.contains(index) {
                leasedResults[index] = outcome == 0
            }
        }
        return try places.map { place -> any Sendable in
            let result: (any Sendable)? =
                switch place.side {
                case 0: holdResults[place.index]
                case 1: closeResults[place.index]
                default: leasedResults[place.index]
                }
            guard let result else { throw StoreFailure(reason: "the ledger's batch statement left a write without its result") }
            return result
        }
    }

    /// The holds' columns, bound as arrays.
    private struct HoldColumns {
        var tenants: [Int64] = []
        var requests: [String] = []
        var amounts: [Int64] = []
        var models: [String] = []
        /// 0 for no key (key ids start at 1).
        var keys: [Int64] = []
        var expiries: [Int64] = []

        mutating func append(_ hold: Hold) {
            tenants.append(hold.tenantID)
            requests.append(hold.requestID)
            amounts.append(hold.amount.microcredits)
            models.append(hold.model)
            keys.append(hold.keyID ?? 0)
            expiries.append(Int64(hold.expiresAt.millisecondsSince1970))
        }
    }

    /// The settlements' and releases' columns; a release's cost is -1.
    private struct CloseColumns {
        var tenants: [Int64] = []
        var requests: [String] = []
        var costs: [Int64] = []

        mutating func append(tenantID: Int64, requestID: String, cost: Int64) {
            tenants.append(tenantID)
            requests.append(requestID)
            costs.append(cost)
        }
    }

    /// Settlements on credit leases: the hold's and the settlement's columns, and the replica.
    private struct LeasedColumns {
        var tenants: [Int64] = []
        var requests: [String] = []
        var held: [Int64] = []
        var costs: [Int64] = []
        var models: [String] = []
        /// 0 for no key.
        var keys: [Int64] = []
        var owner: String?

        mutating func append(_ settlement: LeasedSettlement) {
            tenants.append(settlement.tenantID)
            requests.append(settlement.requestID)
            held.append(settlement.hold.amount)
            costs.append(settlement.cost)
            models.append(settlement.hold.model)
            keys.append(settlement.hold.keyID ?? 0)
            owner = settlement.owner
        }
    }

    /// `$1` now (ms), `$2` `synchronous_commit` for this transaction, `$3`...`$8` the holds'
    /// columns, `$9`...`$11` the closes', `$12`...`$17` the leased settlements', `$18` the replica
    /// whose leases pay for them. Answers one row per write: `side` 0 for a hold, 1 for a close,
    /// 2 for a leased settlement; `ord` its 1-based position on its side; `outcome` (hold: 0 held,
    /// 1 insufficient, 2 duplicate, 3 unknown tenant; close: 0 closed, 1 no open hold; leased
    /// settlement: 0 written, 1 billed before or no lease); `balance` for holds.
    ///
    /// A leased settlement writes its hold entry (`ON CONFLICT DO NOTHING`: a request id billed
    /// before writes nothing) and, for those written, its settlement entry; the replica's lease
    /// row, locked, loses the costs (its `CHECK (amount_micros >= 0)` the last guard). Without a
    /// lease row (returned after the replica stopped renewing it) nothing is written.
    static let statement = """
        WITH h AS (
            SELECT * FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::bigint[], $8::bigint[])
                WITH ORDINALITY AS h (tenant_id, request_id, amount, model, key_id, expires_at_ms, ord)
        ), c AS (
            SELECT * FROM unnest($9::bigint[], $10::text[], $11::bigint[]) WITH ORDINALITY AS c (tenant_id, request_id, cost, ord)
        ), taken AS (
            DELETE FROM open_holds o USING c WHERE o.tenant_id = c.tenant_id AND o.request_id = c.request_id
            RETURNING c.ord, o.tenant_id, o.request_id, o.amount_micros, c.cost
        ), closed AS (
            INSERT INTO ledger_entries (tenant_id, request_id, phase, kind, amount_micros, created_at_ms)
            SELECT tenant_id, request_id, 'close', CASE WHEN cost < 0 THEN 'release' ELSE 'settle' END,
                CASE WHEN cost < 0 THEN amount_micros ELSE GREATEST(amount_micros - cost, 0) END, $1
            FROM taken ORDER BY ord RETURNING tenant_id, request_id, kind, amount_micros
        ), forgotten AS (
            DELETE FROM idempotency_keys k USING closed
            WHERE closed.kind = 'release' AND k.tenant_id = closed.tenant_id AND k.request_id = closed.request_id
        ), refunds AS (
            SELECT tenant_id, SUM(amount_micros) AS refund FROM closed GROUP BY tenant_id
        ), locked AS (
            SELECT t.id, t.balance_micros FROM tenants t
            WHERE t.id IN (SELECT tenant_id FROM h UNION SELECT tenant_id FROM c) ORDER BY t.id FOR UPDATE
        ), candidates AS (
            SELECT DISTINCT ON (tenant_id, request_id) * FROM h ORDER BY tenant_id, request_id, ord
        ), ranked AS (
            SELECT k.*, l.balance_micros + COALESCE(r.refund, 0) AS funds,
                SUM(k.amount) OVER (PARTITION BY k.tenant_id ORDER BY k.ord) AS running
            FROM candidates k JOIN locked l ON l.id = k.tenant_id LEFT JOIN refunds r ON r.tenant_id = k.tenant_id
        ), entries AS (
            INSERT INTO ledger_entries (tenant_id, request_id, phase, kind, amount_micros, model, key_id, created_at_ms)
            SELECT tenant_id, request_id, 'open', 'hold', -amount, model, NULLIF(key_id, 0), $1 FROM ranked
            WHERE running <= funds ORDER BY ord
            ON CONFLICT DO NOTHING RETURNING tenant_id, request_id
        ), admitted AS (
            SELECT r.* FROM ranked r JOIN entries e ON e.tenant_id = r.tenant_id AND e.request_id = r.request_id
        ), opened AS (
            INSERT INTO open_holds (tenant_id, request_id, amount_micros, expires_at_ms)
            SELECT tenant_id, request_id, amount, expires_at_ms FROM admitted
        ), change AS (
            SELECT l.id, l.balance_micros + COALESCE(r.refund, 0) - COALESCE(a.spent, 0) AS balance,
                COALESCE(r.refund, 0) - COALESCE(a.spent, 0) AS delta
            FROM locked l
            LEFT JOIN refunds r ON r.tenant_id = l.id
            LEFT JOIN (SELECT tenant_id, SUM(amount) AS spent FROM admitted GROUP BY tenant_id) a ON a.tenant_id = l.id
        ), updated AS (
            UPDATE tenants t SET balance_micros = t.balance_micros + change.delta FROM change
            WHERE t.id = change.id AND change.delta <> 0
        ), ls AS (
            SELECT * FROM unnest($12::bigint[], $13::text[], $14::bigint[], $15::bigint[], $16::text[], $17::bigint[])
                WITH ORDINALITY AS ls (tenant_id, request_id, held, cost, model, key_id, ord)
        ), leases AS (
            SELECT l.tenant_id FROM credit_leases l
            WHERE l.owner = $18 AND l.tenant_id IN (SELECT tenant_id FROM ls) ORDER BY l.tenant_id FOR UPDATE
        ), spent_holds AS (
            INSERT INTO ledger_entries (tenant_id, request_id, phase, kind, amount_micros, model, key_id, created_at_ms)
            SELECT tenant_id, request_id, 'open', 'hold', -held, model, NULLIF(key_id, 0), $1 FROM ls
            WHERE tenant_id IN (SELECT tenant_id FROM leases) ORDER BY ord
            ON CONFLICT DO NOTHING RETURNING tenant_id, request_id
        ), spent AS (
            SELECT ls.* FROM ls JOIN spent_holds s ON s.tenant_id = ls.tenant_id AND s.request_id = ls.request_id
        ), spent_closes AS (
            INSERT INTO ledger_entries (tenant_id, request_id, phase, kind, amount_micros, created_at_ms)
            SELECT tenant_id, request_id, 'close', 'settle', GREATEST(held - cost, 0), $1 FROM spent ORDER BY ord
        ), lease_change AS (
            UPDATE credit_leases l SET amount_micros = l.amount_micros - s.total
            FROM (SELECT tenant_id, SUM(cost) AS total FROM spent GROUP BY tenant_id) s
            WHERE l.tenant_id = s.tenant_id AND l.owner = $18 AND s.total <> 0
        )
        SELECT 0 AS side, h.ord AS ord,
            CASE WHEN a.ord IS NOT NULL THEN 0 WHEN ch.id IS NULL THEN 3 WHEN r.ord IS NULL OR r.running <= r.funds THEN 2 ELSE 1 END
                AS outcome,
            COALESCE(a.funds - a.running, ch.balance) AS balance,
            set_config('synchronous_commit', $2, true) AS commit_mode
        FROM h LEFT JOIN admitted a ON a.ord = h.ord LEFT JOIN ranked r ON r.ord = h.ord LEFT JOIN change ch ON ch.id = h.tenant_id
        UNION ALL
        SELECT 1, c.ord, CASE WHEN t.ord IS NULL THEN 1 ELSE 0 END, NULL, set_config('synchronous_commit', $2, true)
        FROM c LEFT JOIN taken t ON t.ord = c.ord
        UNION ALL
        SELECT 2, ls.ord, CASE WHEN s.ord IS NULL THEN 1 ELSE 0 END, NULL, set_config('synchronous_commit', $2, true)
        FROM ls LEFT JOIN spent s ON s.ord = ls.ord
        """
}

/// A group commit's plain holds, settlements and releases on SQLite in a handful of statements
/// for the whole batch, where write by write they took three each: the writes travel as JSON
/// arrays (`json_each`, joined to each table on its whole key: a row-value `IN` would use only the
/// key's first column and read every entry of the tenant), the batch's holds are decided in Swift against balances read once, and
/// each tenant's row is updated once with the batch's net change.
///
/// The same rules as write by write, exactly: settlements and releases go first, so what they
/// return can pay for the batch's holds; holds are decided in queue order against what is left
/// (a refused hold does not stop a later, smaller one); a request id held before, or earlier in
/// the batch, is a duplicate. Exact because the ledger's connection is the file's only ledger
/// writer and its transaction holds the write lock from `BEGIN IMMEDIATE`: nothing changes the
/// rows between the reads and the writes (a grant from `cortex credits` waits for the lock).
enum SQLiteLedgerBatch {
    /// Runs `writes` inside the caller's transaction on `database`; results as ``PostgresLedgerBatch/run(_:durable:in:)``.
    static func run(_ writes: [BatchedLedgerWrite], in database: any SQLDatabase) async throws -> [any Sendable] {
        let now = SQLValue.integer(Int64(Date().millisecondsSince1970))
        var results = [(any Sendable)?](repeating: nil, count: writes.count)
        var closes: [(index: Int, key: Key, cost: Int64?)] = []
        var holds: [(index: Int, hold: Hold)] = []
        var leased: [(index: Int, settlement: LeasedSettlement)] = []
        for (index, write) in writes.enumerated() {
            switch write {
            case .leasedSettle(let settlement): leased.append((index, settlement))
            case .hold(let hold): holds.append((index, hold))
            case .settle(let tenantID, let requestID, let cost): closes.append((index, Key(tenantID, requestID), cost.microcredits))
            case .release(let tenantID, let requestID): closes.append((index, Key(tenantID, requestID), nil))
            }
        }
        /// What each tenant's row changes by, once at the end.
        var change: [Int64: Int64] = [:]

        if !closes.isEmpty {
            let taken = try await database.query(
                """
                DELETE FROM open_holds WHERE rowid IN (
                    SELECT o.rowid FROM json_each($1) j
                    JOIN open_holds o ON o.tenant_id = j.value ->> 0 AND o.request_id = j.value ->> 1)
                RETURNING tenant_id, request_id, amount_micros
                """,
                [.text(json(closes.map(\.key)))]
            )
            var held: [Key: Int64] = [:]
            for row in taken {
                if let tenant = row.integer("tenant_id"), let request = row.text("request_id"), let amount = row.integer("amount_micros") {
                    held[Key(tenant, request)] = amount
                }
            }
            var entries = JSONWriter()
            var released: [Key] = []
            entries.beginArray()
            for close in closes {
                // A second close of the same request in one batch finds nothing, as it would alone.
                guard let amount = held.removeValue(forKey: close.key) else {
                    results[close.index] = false
                    continue
                }
                results[close.index] = true
                let back = close.cost.map { max(amount - $0, 0) } ?? amount
                change[close.key.tenant, default: 0] += back
                if close.cost == nil { released.append(close.key) }
                entries.beginArray()
                entries.number(Int(close.key.tenant))
                entries.string(close.key.request)
                entries.string(close.cost == nil ? "release" : "settle")
                entries.number(Int(back))
                entries.endArray()
            }
            entries.endArray()
            if !taken.isEmpty {
                _ = try await database.query(
                    """
                    INSERT INTO ledger_entries (tenant_id, request_id, phase, kind, amount_micros, created_at_ms)
                    SELECT value ->> 0, value ->> 1, 'close', value ->> 2, value ->> 3, $2 FROM json_each($1)
                    """,
                    [.text(entries.text), now]
                )
            }
            if !released.isEmpty {
                // A request that failed leaves its key free, so the client's retry can run.
                _ = try await database.query(
                    """
                    DELETE FROM idempotency_keys WHERE rowid IN (
                        SELECT k.rowid FROM json_each($1) j
                        JOIN idempotency_keys k ON k.tenant_id = j.value ->> 0 AND k.request_id = j.value ->> 1)
                    """,
                    [.text(json(released))]
                )
            }
        }

        if !holds.isEmpty {
            let tenants = Array(Set(holds.map(\.hold.tenantID)))
            var funds: [Int64: Int64] = [:]
            for row in try await database.query(
                "SELECT id, balance_micros FROM tenants WHERE id IN (SELECT value FROM json_each($1))",
                [.text("[" + tenants.map(String.init).joined(separator: ",") + "]")]
            ) {
                if let id = row.integer("id"), let balance = row.integer("balance_micros") {
                    funds[id] = balance + change[id, default: 0]
                }
            }
            let keys = holds.map { Key($0.hold.tenantID, $0.hold.requestID) }
            var billed = try await billedBefore(keys, in: database)
            var entries = JSONWriter()
            var opened = JSONWriter()
            entries.beginArray()
            opened.beginArray()
            var admitted = 0
            for (item, key) in zip(holds, keys) {
                let hold = item.hold
                guard let available = funds[hold.tenantID] else {
                    results[item.index] = HoldOutcome.unknownTenant
                    continue
                }
                guard !billed.contains(key) else {
                    results[item.index] = HoldOutcome.duplicateRequest
                    continue
                }
                let amount = hold.amount.microcredits
                guard available >= amount else {
                    results[item.index] = HoldOutcome.insufficient(balance: Credits(microcredits: available))
                    continue
                }
                funds[hold.tenantID] = available - amount
                change[hold.tenantID, default: 0] -= amount
                billed.insert(key)
                admitted += 1
                results[item.index] = HoldOutcome.held(balance: Credits(microcredits: available - amount))
                entries.beginArray()
                entries.number(Int(hold.tenantID))
                entries.string(hold.requestID)
                entries.number(Int(-amount))
                entries.string(hold.model)
                if let keyID = hold.keyID { entries.number(Int(keyID)) } else { entries.null() }
                entries.endArray()
                opened.beginArray()
                opened.number(Int(hold.tenantID))
                opened.string(hold.requestID)
                opened.number(Int(amount))
                opened.number(hold.expiresAt.millisecondsSince1970)
                opened.endArray()
            }
            entries.endArray()
            opened.endArray()
            if admitted > 0 {
                _ = try await database.query(
                    """
                    INSERT INTO ledger_entries (tenant_id, request_id, phase, kind, amount_micros, model, key_id, created_at_ms)
                    SELECT value ->> 0, value ->> 1, 'open', 'hold', value ->> 2, value ->> 3, value ->> 4, $2 FROM json_each($1)
                    """,
                    [.text(entries.text), now]
                )
                _ = try await database.query(
                    """
                    INSERT INTO open_holds (tenant_id, request_id, amount_micros, expires_at_ms)
                    SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each($1)
                    """,
                    [.text(opened.text)]
                )
            }
        }

        if !leased.isEmpty {
            try await settleLeased(leased, results: &results, now: now, in: database)
        }

        for (tenant, delta) in change.sorted(by: { $0.key < $1.key }) where delta != 0 {
            _ = try await database.query(
                "UPDATE tenants SET balance_micros = balance_micros + $2 WHERE id = $1", [.integer(tenant), .integer(delta)])
        }
        return try results.map { result in
            guard let result else { throw StoreFailure(reason: "the ledger's batch left a write without its result") }
            return result
        }
    }

    /// Settlements on this replica's credit leases: both entries of each, in one insert, and
    /// each lease row charged once (its `CHECK (amount_micros >= 0)` the last guard). A request
    /// id billed before, or a tenant without a lease row, writes nothing.
    private static func settleLeased(
        _ leased: [(index: Int, settlement: LeasedSettlement)],
        results: inout [(any Sendable)?],
        now: SQLValue,
        in database: any SQLDatabase
    ) async throws {
        let owner = leased[0].settlement.owner
        guard leased.allSatisfy({ $0.settlement.owner == owner }) else {
            throw StoreFailure(reason: "one batch settles on one replica's leases")
        }
        let tenants = Array(Set(leased.map(\.settlement.tenantID))).sorted()
        var leases = Set<Int64>()
        for row in try await database.query(
            "SELECT tenant_id FROM credit_leases WHERE owner = $1 AND tenant_id IN (SELECT value FROM json_each($2))",
            [.text(owner), .text("[" + tenants.map(String.init).joined(separator: ",") + "]")]
        ) {
            if let tenant = row.integer("tenant_id") { leases.insert(tenant) }
        }
        var billed = try await billedBefore(leased.map { Key($0.settlement.tenantID, $0.settlement.requestID) }, in: database)
        var spent: [Int64: Int64] = [:]
        var written = 0
        var entries = JSONWriter()
        entries.beginArray()
        for (index, settlement) in leased {
            let key = Key(settlement.tenantID, settlement.requestID)
            guard leases.contains(settlement.tenantID), !billed.contains(key) else {
                results[index] = false
                continue
            }
            billed.insert(key)
            results[index] = true
            written += 1
            let hold = settlement.hold
            spent[settlement.tenantID, default: 0] += settlement.cost
            entries.beginArray()
            entries.number(Int(settlement.tenantID))
            entries.string(settlement.requestID)
            entries.string("open")
            entries.string("hold")
            entries.number(Int(-hold.amount))
            entries.string(hold.model)
            if let keyID = hold.keyID { entries.number(Int(keyID)) } else { entries.null() }
            entries.endArray()
            entries.beginArray()
            entries.number(Int(settlement.tenantID))
            entries.string(settlement.requestID)
            entries.string("close")
            entries.string("settle")
            entries.number(Int(max(hold.amount - settlement.cost, 0)))
            entries.null()
            entries.null()
            entries.endArray()
        }
        entries.endArray()
        guard written > 0 else { return }
        _ = try await database.query(
            """
            INSERT INTO ledger_entries (tenant_id, request_id, phase, kind, amount_micros, model, key_id, created_at_ms)
            SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, $2 FROM json_each($1)
            """,
            [.text(entries.text), now]
        )
        for (tenant, cost) in spent.sorted(by: { $0.key < $1.key }) where cost != 0 {
            _ = try await database.query(
                "UPDATE credit_leases SET amount_micros = amount_micros - $3 WHERE tenant_id = $1 AND owner = $2",
                [.integer(tenant), .text(owner), .integer(cost)]
            )
        }
    }

    /// Which of `keys` have a hold entry already.
    private static func billedBefore(_ keys: [Key], in database: any SQLDatabase) async throws -> Set<Key> {
        var billed = Set<Key>()
        for row in try await database.query(
            """
            SELECT e.tenant_id AS tenant_id, e.request_id AS request_id FROM json_each($1) j
            JOIN ledger_entries e ON e.tenant_id = j.value ->> 0 AND e.request_id = j.value ->> 1 AND e.phase = 'open'
            """,
            [.text(json(keys))]
        ) {
            if let tenant = row.integer("tenant_id"), let request = row.text("request_id") { billed.insert(Key(tenant, request)) }
        }
        return billed
    }

    /// A tenant and request id.
    struct Key: Hashable {
        var tenant: Int64
        var request: String

        init(_ tenant: Int64, _ request: String) {
            self.tenant = tenant
            self.request = request
        }
    }

    /// `[[tenant, "request"], ...]` for `json_each`.
    private static func json(_ keys: [Key]) -> String {
        var json = JSONWriter(capacity: keys.count * 48)
        json.beginArray()
        for key in keys {
            json.beginArray()
            json.number(Int(key.tenant))
            json.string(key.request)
            json.endArray()
        }
        json.endArray()
        return json.text
    }
}
