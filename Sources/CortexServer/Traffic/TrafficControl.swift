public import CortexCore
import Synchronization

/// The A/B image service's traffic switches as they are now: read by every request to
/// `POST /v1/infer`, changed without a restart by `POST /admin/config` or `cortex traffic set`.
///
/// Changes are stored in the database with a version (``TrafficSync`` applies a newer one within
/// ``TrafficSync/interval`` on every replica, and at start), so a restart keeps them and every
/// replica serves the same split; until the first change, the settings (`AB_WEIGHT_A`, ...) apply.
public final class TrafficControl: Sendable {
    /// The endpoint whose split this is, as stored and counted.
    public static let endpoint = "/v1/infer"

    private let storage: Mutex<(settings: CortexConfiguration.Traffic, split: TrafficSplit?, version: Int64)>

    /// The switches as configured (`AB_WEIGHT_A`, `AB_WEIGHT_B`, `STICKY_COOKIE`, ...), version 0.
    public init(_ settings: CortexConfiguration.Traffic) {
        storage = Mutex((settings, settings.split, 0))
    }

    /// The switches now.
    public var settings: CortexConfiguration.Traffic { storage.withLock { $0.settings } }
    /// The stored version applied, 0 while the configured settings apply.
    public var version: Int64 { storage.withLock { $0.version } }
    /// The switches and the split now (one lock), the split `nil` when requests go to `IMAGE_MODEL`.
    var state: (settings: CortexConfiguration.Traffic, split: TrafficSplit?) {
        storage.withLock { ($0.settings, $0.split) }
    }

    /// A change: the fields given, each checked as its variable is.
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

        /// The admin API's body (and the stored document): any of `ab_weight_a`, `ab_weight_b`
        /// (numbers), `shadow_enabled`, `canary_enabled` (booleans).
        ///
        /// - Throws: 422 `invalid_config` naming the field for anything else.
        package init(json: JSONValue) throws(APIError) {
            guard case .object(let members) = json else { throw APIError.invalidConfig("", "a JSON object") }
            for (name, value) in members {
                switch (name, value) {
                case ("ab_weight_a", .number(let weight)): weightA = weight
                case ("ab_weight_b", .number(let weight)): weightB = weight
                case ("shadow_enabled", .bool(let flag)): shadowEnabled = flag
                case ("canary_enabled", .bool(let flag)): canaryEnabled = flag
                case ("ab_weight_a", _), ("ab_weight_b", _): throw APIError.invalidConfig(name, "a number")
                case ("shadow_enabled", _), ("canary_enabled", _): throw APIError.invalidConfig(name, "true or false")
                default: throw APIError.invalidConfig(name, "one of ab_weight_a, ab_weight_b, shadow_enabled, canary_enabled")
                }
            }
        }
    }

    /// The switches `change` would make of the current ones; nothing is applied.
    ///
    /// - Throws: 422 `invalid_config` naming the field: a weight below 0 or above 1000000, both
    ///   weights 0, or a switch this release cannot honour turned on.
    public func proposed(_ change: Change) throws(APIError) -> CortexConfiguration.Traffic {
        try Self.applying(change, to: settings)
    }

    /// `change` on top of `settings`, checked.
    public static func applying(_ change: Change, to settings: CortexConfiguration.Traffic) throws(APIError)
        -> CortexConfiguration.Traffic
    {
        for (field, value) in [("ab_weight_a", change.weightA), ("ab_weight_b", change.weightB)] {
            guard let value else { continue }
            guard value.isFinite, (0...1_000_000).contains(value) else {
                throw APIError.invalidConfig(field, "a weight from 0 to 1000000; got \(value)")
            }
        }
        if change.shadowEnabled == true {
            throw APIError.invalidConfig("shadow_enabled", "false: shadow traffic is not available in this release yet")
        }
        if change.canaryEnabled == true {
            throw APIError.invalidConfig("canary_enabled", "false: canary analysis is not available in this release yet")
        }
        var next = settings
        next.weightA = change.weightA ?? next.weightA
        next.weightB = change.weightB ?? next.weightB
        guard next.weightA > 0 || next.weightB > 0 else { throw APIError.invalidConfig("ab_weight_a", "a weight above 0 for vA or vB") }
        return next
    }

    /// Serves `settings` from now on, as stored `version`; an older or equal version than the one
    /// applied is ignored (a replica's own change, then the poll that sees it).
    ///
    /// - Returns: The switches before, or `nil` when nothing changed.
    @discardableResult
    public func install(_ settings: CortexConfiguration.Traffic, version: Int64) -> CortexConfiguration.Traffic? {
        storage.withLock { state in
            guard version > state.version else { return nil }
            let before = state.settings
            state = (settings, settings.split, version)
            return before
        }
    }

    /// The stored document of `settings`: the four switches the admin API takes.
    public static func json(_ settings: CortexConfiguration.Traffic) -> String {
        var json = JSONWriter(capacity: 128)
        json.beginObject()
        write(settings, to: &json)
        json.endObject()
        return json.text
    }

    /// The four switches as members of an object being written.
    static func write(_ settings: CortexConfiguration.Traffic, to json: inout JSONWriter) {
        json.key("ab_weight_a")
        json.number(settings.weightA)
        json.key("ab_weight_b")
        json.number(settings.weightB)
        json.member("shadow_enabled", settings.shadowEnabled)
        json.member("canary_enabled", settings.canaryEnabled)
    }
}

extension APIError {
    /// 422 `invalid_config` naming `field` (empty for the body itself) and what it must be.
    static func invalidConfig(_ field: String, _ expected: String) -> APIError {
        APIError(
            status: 422, code: "invalid_config", message: field.isEmpty ? "the body must be \(expected)" : "'\(field)' must be \(expected)",
            fields: [("field", .string(field))])
    }
}
