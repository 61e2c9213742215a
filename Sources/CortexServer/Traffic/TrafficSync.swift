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
            guard let before = control.install(settings, version: record.version) else { return }
            logger.notice(
                "TRAFFIC_CONFIG_APPLIED",
                metadata: [
                    "endpoint": "\(control.endpoint)", "version": "\(record.version)", "settings": "\(TrafficControl.summary(settings))",
                ])
            if promoting, settings.promotions > before.promotions {
                // Failure is logged (MODEL_PROMOTE_FAIL) and the primary keeps serving.
                try? await Promotion(primary: settings.variantA, candidate: settings.variantB).run(on: registry, logger: logger)
            }
        } catch {
            logger.error("TRAFFIC_SYNC_FAIL", metadata: ["version": "\(record.version)", "error": "stored settings refused: \(error)"])
        }
    }
}
