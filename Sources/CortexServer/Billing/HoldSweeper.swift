public import CortexStore
import Foundation
public import Logging
public import ServiceLifecycle

/// Releases holds whose requests never finished (the process that held them died, or the work
/// outlived `HOLD_TTL_S`), so their credits go back to the tenant. Runs at start and then every
/// `HOLD_SWEEP_INTERVAL_S`; with several replicas each sweeps, and a hold is released once.
public struct HoldSweeper: Service {
    let ledger: any Ledger
    let interval: Duration
    let logger: Logger

    /// Creates the sweeper.
    public init(ledger: any Ledger, interval: Duration, logger: Logger) {
        self.ledger = ledger
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let released = try await ledger.releaseExpiredHolds(at: Date())
                if released > 0 {
                    logger.warning("HOLDS_EXPIRED", metadata: ["released": .stringConvertible(released)])
                }
            } catch {
                logger.error("BILLING_FAIL", metadata: ["reason": "could not release expired holds", "error": "\(error)"])
            }
            do {
                try await cancelWhenGracefulShutdown {
                    try await Task.sleep(for: interval)
                }
            } catch {
                return
            }
        }
    }
}
