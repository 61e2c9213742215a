import CoreMetrics
public import Metrics
import Synchronization

/// The shadow's and the canary's metrics; labels are endpoints and variant names (`vA`, `vB`), so
/// their number stays bounded.
public final class TrafficMetrics: Sendable {
    /// How a shadow copy ended, as `shadow_requests_total{outcome}` counts it.
    public enum ShadowOutcome: String, Sendable, CaseIterable {
        /// Run, and compared with the primary's answer.
        case compared
        /// Run, but the answers had different shapes, so no comparison was made.
        case incomparable
        /// The shadow model refused the input, failed, or was not ready.
        case failed
        /// The queue was full; the copy was not run.
        case dropped
    }

    /// The buckets of `shadow_absolute_difference`: from float rounding to wholly different.
    public static let differenceBuckets: [Double] = [1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.5, 1, 10, 100]

    let factory: any MetricsFactory
    private let counters = Mutex<[String: Counter]>([:])
    private let gauges = Mutex<[String: Gauge]>([:])
    private let recorders = Mutex<[String: Recorder]>([:])
    /// Rows compared and rows whose top-1 agreed, per endpoint and pair, for the ratio gauge.
    private let agreement = Mutex<[String: (agreed: Int, compared: Int)]>([:])

    public init(factory: any MetricsFactory) {
        self.factory = factory
    }

    /// `shadow_requests_total{endpoint,shadow,outcome}`.
    func shadow(endpoint: String, shadow: String, outcome: ShadowOutcome) {
        counter("shadow_requests_total", [("endpoint", endpoint), ("shadow", shadow), ("outcome", outcome.rawValue)]).increment()
    }

    /// A classifier's rows compared: `shadow_comparisons_total{result}` and `shadow_agreement_ratio`,
    /// the share of rows (since start) whose most probable class was the same on both.
    func agreement(endpoint: String, primary: String, shadow: String, agreed: Int, rows: Int) {
        let labels = [("endpoint", endpoint), ("primary", primary), ("shadow", shadow)]
        if agreed > 0 { counter("shadow_comparisons_total", labels + [("result", "agree")]).increment(by: agreed) }
        if rows > agreed { counter("shadow_comparisons_total", labels + [("result", "disagree")]).increment(by: rows - agreed) }
        let key = labels.map(\.1).joined(separator: " ")
        let ratio = agreement.withLock { totals in
            var total = totals[key] ?? (0, 0)
            total.agreed += agreed
            total.compared += rows
            totals[key] = total
            return Double(total.agreed) / Double(max(1, total.compared))
        }
        gauge("shadow_agreement_ratio", labels).record(ratio)
    }

    /// A regressor's or scorer's values compared: each absolute difference into `shadow_absolute_difference`.
    func differences(endpoint: String, primary: String, shadow: String, _ values: [Double]) {
        let recorder = recorder("shadow_absolute_difference", [("endpoint", endpoint), ("primary", primary), ("shadow", shadow)])
        for value in values { recorder.record(value) }
    }

    /// `canary_weight{endpoint}`: the candidate's share of the traffic now (0 while no canary runs).
    func canaryWeight(endpoint: String, _ share: Double) {
        gauge("canary_weight", [("endpoint", endpoint)]).record(share)
    }

    /// `canary_decisions_total{endpoint,decision}`: `step`, `promoted` or `rolled_back`.
    func canaryDecision(endpoint: String, _ decision: String) {
        counter("canary_decisions_total", [("endpoint", endpoint), ("decision", decision)]).increment()
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        Self.cached(counters, label, dimensions) { Counter(label: label, dimensions: dimensions, factory: factory) }
    }

    private func gauge(_ label: String, _ dimensions: [(String, String)]) -> Gauge {
        Self.cached(gauges, label, dimensions) { Gauge(label: label, dimensions: dimensions, factory: factory) }
    }

    private func recorder(_ label: String, _ dimensions: [(String, String)]) -> Recorder {
        Self.cached(recorders, label, dimensions) { Recorder(label: label, dimensions: dimensions, aggregate: true, factory: factory) }
    }

    /// The handle of `label` and `dimensions` in `cache`, made on first use.
    private static func cached<Handle: Sendable>(
        _ cache: borrowing Mutex<[String: Handle]>, _ label: String, _ dimensions: [(String, String)], make: () -> Handle
    ) -> Handle {
        cache.withLock { handles in
            let key = ([label] + dimensions.map(\.1)).joined(separator: " ")
            if let handle = handles[key] { return handle }
            let handle = make()
            handles[key] = handle
            return handle
        }
    }
}
