import Foundation

/// How a replica leases credits: a block of a tenant's balance reserved in one database write,
/// from which the replica holds its requests' prices in memory.
public struct CreditLeasePolicy: Sendable, Hashable {
    /// How many holds of the request that takes a lease the lease covers (`CREDIT_LEASE_HOLDS`).
    public var holdsPerLease: Int
    /// A lease is taken only while the tenant's balance covers this many leases of that size:
    /// below it every hold goes to the database, exact to the last credit, so what one replica
    /// has leased never refuses another replica's request on a nearly empty balance.
    public var minimumLeasesInBalance: Int64
    /// A lease unused this long (no request in flight on it) goes back to the balance.
    public var idleReturn: Duration
    /// After a lease was refused (balance too low), holds of that tenant go to the database for
    /// this long before a lease is tried again.
    public var refusalBackoff: Duration
    /// How long a lease lives in the database without its replica renewing it; a replica renews
    /// its leases three times per period, so only a dead replica's leases expire.
    public var lifetime: Duration

    /// Creates the policy.
    public init(
        holdsPerLease: Int,
        minimumLeasesInBalance: Int64 = 16,
        idleReturn: Duration = .seconds(1),
        refusalBackoff: Duration = .seconds(1),
        lifetime: Duration = .seconds(30)
    ) {
        self.holdsPerLease = holdsPerLease
        self.minimumLeasesInBalance = minimumLeasesInBalance
        self.idleReturn = idleReturn
        self.refusalBackoff = refusalBackoff
        self.lifetime = lifetime
    }
}

/// A hold made in memory on a credit lease: what its settlement writes.
struct LocalHold: Sendable, Hashable {
    var amount: Int64
    var model: String
    var keyID: Int64?
    var expiresAt: Date
}

/// One replica's credit leases and the holds made on them, as values: every decision is a
/// function of the state and the time passed in, and returns what the caller must do.
///
/// Per tenant: `leased` (what the lease row holds, as this replica knows it) and `held` (the
/// holds in flight on it). A hold fits when `leased - held` covers it. When it does not, the
/// first request takes a bigger lease (one database write) while the others go to the
/// database's own holds, so no request ever waits for another's lease. Settling charges the lease
/// (its row loses the cost, the tenant's row is not touched); releasing returns the hold to it.
///
/// A lease whose row may differ from what this replica believes (a settlement failed without a
/// known outcome, or found no lease) is `suspect`: nothing more is held on it, and once its
/// holds are finished it is returned whole, whatever the row says.
struct CreditLeases: Sendable {
    typealias Instant = ContinuousClock.Instant

    struct Tenant: Sendable, Hashable {
        var leased: Int64 = 0
        /// A lease row exists (it may hold nothing: a lease spent to the last micro-credit).
        var hasRow = false
        var held: Int64 = 0
        var holds = 0
        /// The tenant's balance outside leases when last read, for the balance a hold reports.
        var balance: Int64 = 0
        /// A lease is being taken or returned.
        var busy = false
        /// The lease is being returned: its row is about to go, so nothing more is held on it.
        var returning = false
        var suspect = false
        var refusedUntil: Instant?
        var lastUsed: Instant
    }

    /// A tenant and request id.
    struct Key: Hashable, Sendable {
        var tenant: Int64
        var request: String
    }

    /// What to do with a hold.
    enum Admission: Sendable, Hashable {
        /// Held on the lease; the balance to report.
        case held(balance: Int64)
        /// Take a lease of `amount`, allowed only while the balance is at least `minimumBalance`,
        /// then call ``took(tenant:amount:balance:hold:key:now:)``.
        case take(amount: Int64, minimumBalance: Int64)
        /// Return the tenant's lease, then call ``returned(tenant:)`` and hold in the database.
        case returnLease
        /// Hold in the database.
        case database
    }

    /// How a settlement on a lease ended.
    enum Settlement: Sendable, Hashable {
        /// Written: the lease lost the cost.
        case charged(cost: Int64)
        /// Not written (a request id billed before, or the lease gone): nothing changed.
        case refused
        /// Failed without a known outcome.
        case failed
    }

    let policy: CreditLeasePolicy
    private(set) var tenants: [Int64: Tenant] = [:]
    private(set) var holds: [Key: LocalHold] = [:]

    init(policy: CreditLeasePolicy) {
        self.policy = policy
    }

    /// Decides where `hold` is held.
    mutating func admit(_ hold: LocalHold, key: Key, now: Instant) -> Admission {
        var tenant = tenants[key.tenant] ?? Tenant(lastUsed: now)
        defer { tenants[key.tenant] = tenant }
        if !tenant.suspect, !tenant.returning, holds[key] == nil, tenant.leased - tenant.held >= hold.amount {
            tenant.held += hold.amount
            tenant.holds += 1
            tenant.lastUsed = now
            holds[key] = hold
            return .held(balance: tenant.balance + tenant.leased - tenant.held)
        }
        if tenant.busy || holds[key] != nil { return .database }
        if tenant.suspect || tenant.refusedUntil.map({ now < $0 }) == true {
            guard tenant.holds == 0, tenant.hasRow || tenant.suspect else { return .database }
            tenant.busy = true
            tenant.returning = true
            return .returnLease
        }
        tenant.busy = true
        let (amount, overflow) = hold.amount.multipliedReportingOverflow(by: Int64(max(policy.holdsPerLease, 1)))
        let lease = overflow ? Int64.max : amount
        let (minimum, tooBig) = lease.multipliedReportingOverflow(by: max(policy.minimumLeasesInBalance, 1))
        return .take(amount: lease, minimumBalance: tooBig ? Int64.max : minimum)
    }

    /// A lease of `amount` was taken (`balance` is the tenant's balance after it) or, with
    /// `balance` `nil`, refused. Decides `hold` again: on the lease, or in the database (after
    /// returning what is left of a lease no longer worth keeping).
    mutating func took(tenant id: Int64, amount: Int64, balance: Int64?, hold: LocalHold, key: Key, now: Instant) -> Admission {
        guard var tenant = tenants[id] else { return .database }
        if let balance {
            tenant.leased += amount
            tenant.hasRow = true
            tenant.balance = balance
            tenant.busy = false
            tenant.refusedUntil = nil
            tenants[id] = tenant
            return admit(hold, key: key, now: now)
        }
        tenant.refusedUntil = now.advanced(by: policy.refusalBackoff)
        defer { tenants[id] = tenant }
        guard tenant.holds == 0, tenant.hasRow else {
            tenant.busy = false
            return .database
        }
        tenant.returning = true
        return .returnLease
    }

    /// Taking a lease failed (the database could not be written): nothing changed.
    mutating func takeFailed(tenant id: Int64) {
        tenants[id]?.busy = false
    }

    /// The tenant's lease was returned (or the attempt failed: `returned` false, the lease stays).
    mutating func returned(tenant id: Int64, returned: Bool = true) {
        guard var tenant = tenants[id] else { return }
        tenant.busy = false
        tenant.returning = false
        if returned {
            tenant.leased = 0
            tenant.hasRow = false
            tenant.suspect = false
        }
        if tenant.holds == 0, !tenant.hasRow, tenant.refusedUntil == nil {
            tenants[id] = nil
        } else {
            tenants[id] = tenant
        }
    }

    /// The hold of `key`, if it is on a lease.
    func hold(_ key: Key) -> LocalHold? {
        holds[key]
    }

    /// Ends the hold of `key` after its settlement.
    mutating func settled(_ key: Key, _ outcome: Settlement, now: Instant) {
        guard let hold = holds.removeValue(forKey: key), var tenant = tenants[key.tenant] else { return }
        tenant.held -= hold.amount
        tenant.holds -= 1
        tenant.lastUsed = now
        switch outcome {
        case .charged(let cost): tenant.leased -= cost
        case .refused, .failed: tenant.suspect = true
        }
        tenants[key.tenant] = tenant
    }

    /// Ends the hold of `key` without a charge; returns whether it was on a lease.
    mutating func released(_ key: Key, now: Instant) -> Bool {
        guard let hold = holds.removeValue(forKey: key) else { return false }
        tenants[key.tenant]?.held -= hold.amount
        tenants[key.tenant]?.holds -= 1
        tenants[key.tenant]?.lastUsed = now
        return true
    }

    /// What this replica holds in memory for the tenant.
    func held(tenant id: Int64) -> (amount: Int64, count: Int) {
        tenants[id].map { ($0.held, $0.holds) } ?? (0, 0)
    }

    /// Leases to return now: unused for ``CreditLeasePolicy/idleReturn``, suspect, or (with
    /// `all`) every lease with nothing in flight. Each is marked as returning until
    /// ``returned(tenant:returned:)``: a hold that comes meanwhile goes to the database, since
    /// the row it would be settled on is on its way out.
    mutating func due(now: Instant, all: Bool = false) -> [Int64] {
        var due: [Int64] = []
        for (id, tenant) in tenants where !tenant.busy && tenant.holds == 0 && (tenant.hasRow || tenant.suspect) {
            if all || tenant.suspect || now - tenant.lastUsed >= policy.idleReturn {
                tenants[id]?.busy = true
                tenants[id]?.returning = true
                due.append(id)
            }
        }
        return due.sorted()
    }

    /// Whether any lease is held (and so must be renewed).
    var hasLeases: Bool {
        tenants.values.contains { $0.hasRow || $0.suspect }
    }
}
