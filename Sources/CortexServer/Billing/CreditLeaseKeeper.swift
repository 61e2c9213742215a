public import CortexStore
public import ServiceLifecycle

/// Runs this replica's credit leases (`CREDIT_LEASE_HOLDS`): renews them while the process
/// lives and returns idle ones; at shutdown, stopped after the HTTP server has drained, returns
/// every lease to its tenant's balance. A replica killed without a shutdown leaves its leases to
/// expire, and any replica's hold sweeper returns them.
public struct CreditLeaseKeeper: Service {
    let ledger: LeasingLedger

    /// Creates the service.
    public init(ledger: LeasingLedger) {
        self.ledger = ledger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await ledger.keep() }
        await ledger.returnAll()
    }
}
