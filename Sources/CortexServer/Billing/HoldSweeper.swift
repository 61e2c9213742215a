public import CortexStore
import Foundation
public import Logging
public import ServiceLifecycle

/// Releases holds whose requests never finished (the process that held them died, or the work
/// outlived `HOLD_TTL_S`), so their credits go back to the tenant, and forgets the
/// `Idempotency-Key` records of finished requests older than `IDEMPOTENCY_TTL_S`. Runs at start
/// and then every `HOLD_SWEEP_INTERVAL_S`; with several replicas each sweeps, and a hold is
/// released once.
public struct HoldSweeper: Service {
    let ledger: any Ledger
    let interval: Duration
    let idempotencyTTL: Duration
    let logger: Logger

    /// Creates the sweeper.
    public init(ledger: any Ledger, interval: Duration, idempotencyTTL: Duration = .seconds(86_400), logger: Logger) {
        self.ledger = ledger
        self.interval = interval
        self.idempotencyTTL = idempotencyTTL
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
                let forgotten = try await ledger.forgetIdempotencyKeys(olderThan: idempotencyTTL, at: Date())
                if forgotten > 0 {
                    logger.info("IDEMPOTENCY_KEYS_EXPIRED", metadata: ["forgotten": .stringConvertible(forgotten)])
                }
            } catch {
                logger.error("BILLING_FAIL", metadata: ["reason": "could not forget expired Idempotency-Key records", "error": "\(error)"])
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
