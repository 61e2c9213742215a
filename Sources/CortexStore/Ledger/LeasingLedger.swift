public import CortexCore
public import Foundation
import Synchronization

/// The ledger with credit leases: a replica reserves a block of a tenant's balance in one
/// database write and holds its requests' prices on it in memory, so a billed request makes one
/// database write (its settlement, durable before the 200), not two.
///
/// Exact all the same:
/// - a lease moves credits out of the tenant's balance into the replica's lease row, so no
///   number of replicas can spend a credit twice (the balance's `CHECK` and the lease row's
///   `CHECK` are the last guards);
/// - a settlement writes the request's hold and settlement entries together and takes the cost
///   from the lease row: a tenant's entries always sum to its balance plus its leases;
/// - a replica that dies loses only holds of requests that never answered 200; its leases expire
///   (``CreditLeasePolicy/lifetime``, renewed while it lives) and any replica returns them.
///
/// Only holds without an `Idempotency-Key` whose request id Cortex made (``Hold/requestIDIsUnique``)
/// go on a lease; the others, and every hold while the balance is below
/// ``CreditLeasePolicy/minimumLeasesInBalance`` leases, are the database's own (``SQLLedger``).
/// The decisions are ``CreditLeases``, a value; this class only runs the writes they ask for.
public final class LeasingLedger: Ledger {
    private let base: SQLLedger
    /// This replica's name on its lease rows: random per process.
    let owner: String
    private let policy: CreditLeasePolicy
    private let state: Mutex<CreditLeases>

    init(base: SQLLedger, policy: CreditLeasePolicy, owner: String = UUID().uuidString.lowercased()) {
        self.base = base
        self.owner = owner
        self.policy = policy
        self.state = Mutex(CreditLeases(policy: policy))
    }

    public func hold(_ hold: Hold) async throws -> HoldOutcome {
        guard hold.idempotency == nil, hold.requestIDIsUnique, hold.amount > .zero else { return try await base.hold(hold) }
        let key = CreditLeases.Key(tenant: hold.tenantID, request: hold.requestID)
        let local = LocalHold(amount: hold.amount.microcredits, model: hold.model, keyID: hold.keyID, expiresAt: hold.expiresAt)
        var admission = state.withLock { $0.admit(local, key: key, now: .now) }
        if case .take(let amount, let minimum) = admission {
            let balance: Int64?
            do {
                balance = try await base.takeLease(
                    tenantID: hold.tenantID, owner: owner, amount: amount, minimumBalance: minimum,
                    expiresAt: Date().addingTimeInterval(policy.lifetime.inSeconds))
            } catch {
                state.withLock { $0.takeFailed(tenant: hold.tenantID) }
                throw error
            }
            admission = state.withLock {
                $0.took(tenant: hold.tenantID, amount: amount, balance: balance, hold: local, key: key, now: .now)
            }
        }
        switch admission {
        case .held(let balance):
            return .held(balance: Credits(microcredits: balance))
        case .returnLease:
            await returnLease(of: hold.tenantID)
            return try await base.hold(hold)
        case .take, .database:
            return try await base.hold(hold)
        }
    }

    public func settle(tenantID: Int64, requestID: String, cost: Credits, idempotentResponse: StoredResponse?) async throws -> Bool {
        let key = CreditLeases.Key(tenant: tenantID, request: requestID)
        guard let hold = state.withLock({ $0.hold(key) }) else {
            return try await base.settle(tenantID: tenantID, requestID: requestID, cost: cost, idempotentResponse: idempotentResponse)
        }
        guard hold.expiresAt > Date() else {
            // Past `HOLD_TTL_S`, as a database hold would be: nothing is charged.
            _ = state.withLock { $0.released(key, now: .now) }
            return false
        }
        let charged = min(cost.microcredits, hold.amount)
        do {
            let written = try await base.settleLeased(
                LeasedSettlement(tenantID: tenantID, requestID: requestID, owner: owner, hold: hold, cost: charged))
            state.withLock { $0.settled(key, written ? .charged(cost: charged) : .refused, now: .now) }
            return written
        } catch {
            state.withLock { $0.settled(key, .failed, now: .now) }
            throw error
        }
    }

    public func release(tenantID: Int64, requestID: String) async throws -> Bool {
        let key = CreditLeases.Key(tenant: tenantID, request: requestID)
        if state.withLock({ $0.released(key, now: .now) }) { return true }
        return try await base.release(tenantID: tenantID, requestID: requestID)
    }

    public func grant(_ grant: Grant) async throws -> GrantOutcome {
        try await base.grant(grant)
    }

    public func balance(tenantID: Int64) async throws -> Balance {
        var balance = try await base.balance(tenantID: tenantID)
        let local = Credits(microcredits: state.withLock { $0.held(tenant: tenantID).amount })
        balance.available = balance.available.subtracting(local) ?? .zero
        balance.held = balance.held.adding(local) ?? balance.held
        return balance
    }

    public func entries(tenantID: Int64, limit: Int, before: Int64?) async throws -> [LedgerEntry] {
        try await base.entries(tenantID: tenantID, limit: limit, before: before)
    }

    public func usage(tenantID: Int64) async throws -> [ModelUsage] {
        try await base.usage(tenantID: tenantID)
    }

    public func releaseExpiredHolds(at time: Date) async throws -> Int {
        try await base.releaseExpiredHolds(at: time)
    }

    public func forgetIdempotencyKeys(olderThan ttl: Duration, at time: Date) async throws -> Int {
        try await base.forgetIdempotencyKeys(olderThan: ttl, at: time)
    }

    public func verify(at time: Date, slack: Duration) async throws -> [String] {
        try await base.verify(at: time, slack: slack)
    }

    /// Keeps this replica's leases until cancelled: renews them three times per
    /// ``CreditLeasePolicy/lifetime`` and returns those unused for ``CreditLeasePolicy/idleReturn``.
    /// At shutdown, once requests have drained, call ``returnAll()`` (not from a cancelled task:
    /// a cancelled task's ledger writes are not run).
    public func keep() async {
        let tick = min(policy.idleReturn, policy.lifetime / 3)
        var lastRenewal = ContinuousClock.now
        while !Task.isCancelled {
            do { try await Task.sleep(for: tick) } catch { break }
            for tenant in state.withLock({ $0.due(now: .now) }) { await returnLease(of: tenant) }
            if ContinuousClock.now - lastRenewal >= policy.lifetime / 3, state.withLock({ $0.hasLeases }) {
                lastRenewal = .now
                try? await base.renewLeases(owner: owner, expiresAt: Date().addingTimeInterval(policy.lifetime.inSeconds))
            }
        }
    }

    /// Returns every lease with nothing in flight on it, at shutdown.
    public func returnAll() async {
        for tenant in state.withLock({ $0.due(now: .now, all: true) }) { await returnLease(of: tenant) }
    }

    /// Moves what is left of this replica's lease for `tenant` back into its balance.
    private func returnLease(of tenant: Int64) async {
        do {
            try await base.returnLease(tenantID: tenant, owner: owner)
            state.withLock { $0.returned(tenant: tenant) }
        } catch {
            // Kept (and renewed); the next tick tries again, and if this replica dies it expires.
            state.withLock { $0.returned(tenant: tenant, returned: false) }
        }
    }
}
