public import CortexCore
import Synchronization

/// The A/B image service's traffic switches as they are now: read by every request to
/// `POST /v1/infer`, changed without a restart by `POST /admin/config`.
///
/// A change applies to this process, until it restarts (then the settings apply again); with
/// several replicas, send it to each.
public final class TrafficControl: Sendable {
    private let storage: Mutex<(settings: CortexConfiguration.Traffic, split: TrafficSplit?)>

    /// The switches as configured (`AB_WEIGHT_A`, `AB_WEIGHT_B`, `STICKY_COOKIE`, ...).
    public init(_ settings: CortexConfiguration.Traffic) {
        storage = Mutex((settings, settings.split))
    }

    /// The switches now.
    public var settings: CortexConfiguration.Traffic { storage.withLock { $0.settings } }
    /// The switches and the split now (one lock), the split `nil` when requests go to `IMAGE_MODEL`.
    var state: (settings: CortexConfiguration.Traffic, split: TrafficSplit?) { storage.withLock { $0 } }

    /// A change from `POST /admin/config`: the fields given, each checked as its variable is.
    public struct Change: Sendable, Equatable {
        public var weightA: Double?
        public var weightB: Double?
        public var shadowEnabled: Bool?
        public var canaryEnabled: Bool?

        public init(weightA: Double? = nil, weightB: Double? = nil, shadowEnabled: Bool? = nil, canaryEnabled: Bool? = nil) {
            self.weightA = weightA
            self.weightB = weightB
            self.shadowEnabled = shadowEnabled
            self.canaryEnabled = canaryEnabled
        }
    }

    /// Applies `change` whole, or nothing.
    ///
    /// - Returns: The switches before and after.
    /// - Throws: 422 `invalid_config` naming the field: a weight below 0 or above 1000000, both
    ///   weights 0, or a switch this release cannot honour turned on.
    public func apply(_ change: Change) throws(APIError) -> (before: CortexConfiguration.Traffic, after: CortexConfiguration.Traffic) {
        for (field, value) in [("ab_weight_a", change.weightA), ("ab_weight_b", change.weightB)] {
            guard let value else { continue }
            guard value.isFinite, (0...1_000_000).contains(value) else {
                throw Self.invalid(field, "a weight from 0 to 1000000; got \(value)")
            }
        }
        if change.shadowEnabled == true {
            throw Self.invalid("shadow_enabled", "false: shadow traffic is not available in this release yet")
        }
        if change.canaryEnabled == true {
            throw Self.invalid("canary_enabled", "false: canary analysis is not available in this release yet")
        }
        return try storage.withLock { state throws(APIError) in
            var next = state.settings
            next.weightA = change.weightA ?? next.weightA
            next.weightB = change.weightB ?? next.weightB
            guard next.weightA > 0 || next.weightB > 0 else { throw Self.invalid("ab_weight_a", "a weight above 0 for vA or vB") }
            let before = state.settings
            state = (next, next.split)
            return (before, next)
        }
    }

    private static func invalid(_ field: String, _ expected: String) -> APIError {
        APIError(status: 422, code: "invalid_config", message: "'\(field)' must be \(expected)", fields: [("field", .string(field))])
    }
}
