import CortexCore
public import CortexRuntime
public import CortexStore
import Foundation
public import Logging
public import ServiceLifecycle

/// Applies the stored traffic settings: once at start (so a restart keeps the last change), then
/// every ``interval``, so a change made on one replica (`POST /admin/config`, `cortex traffic set`)
/// reaches the others. One small read per interval per replica.
///
/// It also stores the canary's decisions (``TrafficControl/recordCanary(model:success:latency:)``)
/// as the next version, with `canary` as the actor, so the other replicas follow the same steps;
/// and when the stored `promotions` count goes up (a promotion on another replica, or
/// `cortex traffic promote`), it runs the ``Promotion`` here.
public struct TrafficSync: Service {
    /// How often the stored version is read.
    public static let interval: Duration = .seconds(2)

    let control: TrafficControl
    let store: StateStore
    /// The configured switches the stored ones apply on top of (`STICKY_COOKIE` stays configured).
    let base: CortexConfiguration.Traffic
    let registry: ModelRegistry
    let logger: Logger

    public init(control: TrafficControl, store: StateStore, base: CortexConfiguration.Traffic, registry: ModelRegistry, logger: Logger) {
        self.control = control
        self.store = store
        self.base = base
        self.registry = registry
        self.logger = logger
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                try? await cancelWhenGracefulShutdown {
                    while true {
                        try await Task.sleep(for: Self.interval)
                        await poll()
                    }
                }
            }
            group.addTask {
                try? await cancelWhenGracefulShutdown {
                    for await verdict in control.verdicts { await store(verdict) }
                }
            }
        }
    }

    /// Logs a canary decision with the figures it was made on, and stores the switches it led to,
    /// unless another replica stored a newer version since (its decision stands; the poll applies it).
    func store(_ verdict: TrafficControl.CanaryVerdict) async {
        let (event, label, figures, extra): (String, String, CanaryAnalysis.Figures, Logger.Metadata) =
            switch verdict.decision {
            case .step(let step, let figures):
                ("CANARY_STEP", "step", figures, ["to_share": "\(verdict.settings.canary.share(at: step))", "step": "\(step)"])
            case .promote(let figures): ("CANARY_PROMOTED", "promoted", figures, [:])
            case .rollBack(let reason, let figures): ("CANARY_ROLLED_BACK", "rolled_back", figures, ["reason": "\(reason)"])
            }
        control.metrics?.canaryDecision(endpoint: control.endpoint, label)
        var metadata: Logger.Metadata = [
            "endpoint": "\(control.endpoint)", "share": "\(figures.share)",
            "primary_requests": "\(figures.primaryRequests)", "primary_error_rate": "\(figures.primaryErrorRate)",
            "primary_p99_ms": "\(figures.primaryP99 * 1000)",
            "candidate_requests": "\(figures.candidateRequests)", "candidate_error_rate": "\(figures.candidateErrorRate)",
            "candidate_p99_ms": "\(figures.candidateP99 * 1000)",
        ]
        metadata.merge(extra) { _, new in new }
        let level: Logger.Level = label == "rolled_back" ? .warning : .notice
        do {
            let record = try await store.saveTrafficSettings(
                endpoint: control.endpoint, settings: TrafficControl.json(verdict.settings), actor: "canary",
                ifVersion: verdict.basedOn)
            if let record {
                control.install(verdict.settings, version: record.version)
                metadata["version"] = "\(record.version)"
            } else {
                metadata["version"] = "not stored: another replica changed the split first"
            }
        } catch {
            metadata["version"] = "not stored: \(error)"
        }
        logger.log(level: level, "\(event)", metadata: metadata)
    }

    /// Reads the stored version and installs it when it is newer than the one applied.
    ///
    /// - Parameter promoting: Whether a `promotions` count above the one applied runs a promotion
    ///   here (not at start: this start serves the configured files).
    public func poll(promoting: Bool = true) async {
        let record: TrafficRecord?
        do {
            record = try await store.trafficSettings(endpoint: control.endpoint)
        } catch {
            logger.warning("TRAFFIC_SYNC_FAIL", metadata: ["error": "\(error)"])
            return
        }
        guard let record, record.version > control.version else { return }
        do {
            let settings = try TrafficControl.settings(stored: record.settings, on: base)
            guard await apply(settings, version: record.version, promoting: promoting) != nil else { return }
            logger.notice(
                "TRAFFIC_CONFIG_APPLIED",
                metadata: [
                    "endpoint": "\(control.endpoint)", "version": "\(record.version)", "settings": "\(TrafficControl.summary(settings))",
                ])
        } catch {
            logger.error("TRAFFIC_SYNC_FAIL", metadata: ["version": "\(record.version)", "error": "stored settings refused: \(error)"])
        }
    }

    /// Serves `settings` as stored `version` (``TrafficControl/install(_:version:)``), and runs a
    /// promotion when their `promotions` count is above the one applied and `promoting` is set.
    ///
    /// - Returns: The switches before, or `nil` when `version` was not newer than the one applied.
    @discardableResult
    func apply(_ settings: CortexConfiguration.Traffic, version: Int64, promoting: Bool) async -> CortexConfiguration.Traffic? {
        guard let before = control.install(settings, version: version) else { return nil }
        if promoting, settings.promotions > before.promotions {
            // Failure is logged (MODEL_PROMOTE_FAIL) and the primary keeps serving.
            try? await Promotion(primary: settings.variantA, candidate: settings.variantB).run(on: registry, logger: logger)
        }
        return before
    }

    /// A change made here (`POST /admin/config`, `POST /admin/promote`): stored on top of the
    /// switches stored now (``store(_:endpoint:base:actor:next:)``), then applied, with any
    /// promotion a newer stored version carried that this replica had not run yet (unless
    /// `promoting` is off: the caller has just promoted).
    ///
    /// - Returns: The record stored, the switches applied before (`nil` when a newer version was
    ///   applied meanwhile) and after.
    public func change(
        actor: String, promoting: Bool = true, _ next: (CortexConfiguration.Traffic) throws -> CortexConfiguration.Traffic
    ) async throws -> (record: TrafficRecord, before: CortexConfiguration.Traffic?, after: CortexConfiguration.Traffic) {
        let (record, after) = try await Self.store(store, endpoint: control.endpoint, base: base, actor: actor, next: next)
        let before = await apply(after, version: record.version, promoting: promoting)
        return (record, before, after)
    }

    /// Stores the switches `next` makes of those stored now (else of `base`, the configured ones)
    /// as `endpoint`'s next version: a compare-and-set on the version read, read and tried again
    /// when another change came first, so a concurrent change (another replica's promotion count)
    /// is never overwritten unseen. `cortex traffic set|promote` and the admin API store this way.
    ///
    /// - Throws: `next`'s error; 503 `traffic_contended` after five changes in a row came first.
    public static func store(
        _ store: StateStore, endpoint: String, base: CortexConfiguration.Traffic, actor: String,
        next: (CortexConfiguration.Traffic) throws -> CortexConfiguration.Traffic
    ) async throws -> (record: TrafficRecord, after: CortexConfiguration.Traffic) {
        for _ in 0..<5 {
            let stored = try await store.trafficSettings(endpoint: endpoint)
            let current = try stored.map { try TrafficControl.settings(stored: $0.settings, on: base) } ?? base
            let after = try next(current)
            if let record = try await store.saveTrafficSettings(
                endpoint: endpoint, settings: TrafficControl.json(after), actor: actor, ifVersion: stored?.version ?? 0)
            {
                return (record, after)
            }
        }
        throw APIError(
            status: 503, code: "traffic_contended", message: "the traffic settings of \(endpoint) kept changing meanwhile; try again",
            fields: [("retry_after_s", .double(1))])
    }
}
