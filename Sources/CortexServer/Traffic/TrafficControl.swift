public import CortexCore
import Synchronization

/// One endpoint's traffic switches as they are now (the A/B image service's for `POST /v1/infer`,
/// or a named endpoint's under `/v2/models/{name}`): read by every request to it, changed without
/// a restart by `POST /admin/config` or `cortex traffic set`.
///
/// Changes are stored in the database with a version (``TrafficSync`` applies a newer one within
/// ``TrafficSync/interval`` on every replica, and at start), so a restart keeps them and every
/// replica serves the same split; until the first change, the settings (`AB_WEIGHT_A`, ...) apply.
public final class TrafficControl: Sendable {
    /// The endpoint whose split this is, as stored and counted.
    public let endpoint: String

    private struct State {
        var settings: CortexConfiguration.Traffic
        var split: TrafficSplit?
        var version: Int64
        /// The running canary's analysis of this step; `nil` while no canary runs.
        var canary: CanaryAnalysis?

        init(_ settings: CortexConfiguration.Traffic, version: Int64) {
            self.settings = settings
            self.split = settings.split
            self.version = version
            self.canary = settings.canaryEnabled ? CanaryAnalysis(policy: settings.canary, step: settings.canaryStep) : nil
        }
    }

    private let storage: Mutex<State>
    /// Whether a canary runs, read without the lock by every request of the split.
    private let canaryRunning: Atomic<Bool>
    let metrics: TrafficMetrics?

    /// A canary decision made here, applied here at once and waiting to be stored for the other
    /// replicas (``TrafficSync`` stores it if the stored version is still `basedOn`).
    public struct CanaryVerdict: Sendable {
        public var decision: CanaryAnalysis.Decision
        /// The switches the decision leads to.
        public var settings: CortexConfiguration.Traffic
        /// The stored version the analysis ran on.
        public var basedOn: Int64
    }

    /// The canary's decisions, in order, for ``TrafficSync`` to store.
    let verdicts: AsyncStream<CanaryVerdict>
    private let verdictSink: AsyncStream<CanaryVerdict>.Continuation

    /// The switches as configured (`AB_WEIGHT_A`, `AB_WEIGHT_B`, `STICKY_COOKIE`, ...), version 0.
    public init(_ settings: CortexConfiguration.Traffic, metrics: TrafficMetrics? = nil) {
        endpoint = settings.endpoint
        storage = Mutex(State(settings, version: 0))
        canaryRunning = Atomic(settings.canaryEnabled)
        self.metrics = metrics
        (verdicts, verdictSink) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(16))
        metrics?.canaryWeight(endpoint: endpoint, settings.canaryEnabled ? settings.canary.share(at: settings.canaryStep) : 0)
    }

    /// The switches now.
    public var settings: CortexConfiguration.Traffic { storage.withLock { $0.settings } }
    /// The stored version applied, 0 while the configured settings apply.
    public var version: Int64 { storage.withLock { $0.version } }
    /// The switches and the split now (one lock), the split `nil` when requests go to `IMAGE_MODEL`.
    var state: (settings: CortexConfiguration.Traffic, split: TrafficSplit?) {
        storage.withLock { ($0.settings, $0.split) }
    }
    /// What the variant step of each request reads, under one lock and without copying the rest.
    var routing: (split: TrafficSplit?, stickyCookie: String?, shadowEnabled: Bool) {
        storage.withLock { ($0.split, $0.settings.stickyCookie, $0.settings.shadowEnabled) }
    }
    /// The model names of the two variants, the primary first.
    public var variants: (a: String, b: String) { storage.withLock { ($0.settings.variantA, $0.settings.variantB) } }
    /// The running canary's evidence in its current step; `nil` while no canary runs.
    public var canary: CanaryAnalysis? { storage.withLock { $0.canary } }

    /// Feeds the canary one answer of `model` (`vA` the primary, `vB` the candidate): `success`
    /// false when the model failed (a 5xx), `latency` the model's time in seconds. A decision is
    /// applied here at once (a rollback stops the candidate's traffic with the next request) and
    /// queued to be stored.
    ///
    /// - Returns: The decision, if this answer completed a step's evidence.
    @discardableResult
    public func recordCanary(model: String, success: Bool, latency: Double) -> CanaryAnalysis.Decision? {
        guard canaryRunning.load(ordering: .relaxed) else { return nil }
        let verdict: CanaryVerdict? = storage.withLock { state in
            let candidate = model == state.settings.variantB
            guard candidate || model == state.settings.variantA else { return nil }
            // Optional chaining mutates in place: the windows' latencies are not copied per request.
            guard let decision = state.canary?.record(candidate: candidate, success: success, latency: latency) else { return nil }
            var next = state.settings
            switch decision {
            case .step(let step, _):
                next.canaryStep = step
            case .promote:
                (next.canaryEnabled, next.canaryStep, next.weightA, next.weightB) = (false, 0, 0, 1)
            case .rollBack:
                (next.canaryEnabled, next.canaryStep, next.weightB) = (false, 0, 0)
                if next.weightA == 0 { next.weightA = 1 }
            }
            let basedOn = state.version
            state = State(next, version: basedOn)
            canaryRunning.store(next.canaryEnabled, ordering: .relaxed)
            return CanaryVerdict(decision: decision, settings: next, basedOn: basedOn)
        }
        guard let verdict else { return nil }
        let settings = verdict.settings
        metrics?.canaryWeight(endpoint: endpoint, settings.canaryEnabled ? settings.canary.share(at: settings.canaryStep) : 0)
        verdictSink.yield(verdict)
        return verdict.decision
    }

    /// A change: the fields given, each checked as its variable is.
    public struct Change: Sendable, Equatable {
        public var weightA: Double?
        public var weightB: Double?
        public var shadowEnabled: Bool?
        public var canaryEnabled: Bool?
        /// The canary's step (an index into `CANARY_STEPS`); set by the analysis as it steps up.
        public var canaryStep: Int?
        /// The promotions made so far; only in the stored document (a promotion is its own request).
        public var promotions: Int?

        public init(
            weightA: Double? = nil, weightB: Double? = nil, shadowEnabled: Bool? = nil, canaryEnabled: Bool? = nil, canaryStep: Int? = nil,
            promotions: Int? = nil
        ) {
            self.weightA = weightA
            self.weightB = weightB
            self.shadowEnabled = shadowEnabled
            self.canaryEnabled = canaryEnabled
            self.canaryStep = canaryStep
            self.promotions = promotions
        }

        /// The admin API's body (and the stored document): any of `ab_weight_a`, `ab_weight_b`
        /// (numbers), `shadow_enabled`, `canary_enabled` (booleans), `canary_step` (an integer);
        /// the stored document also has `promotions` (an integer).
        ///
        /// - Throws: 422 `invalid_config` naming the field for anything else.
        package init(json: JSONValue, stored: Bool = false) throws(APIError) {
            guard case .object(let members) = json else { throw APIError.invalidConfig("", "a JSON object") }
            for (name, value) in members {
                switch (name, value) {
                case ("promotions", .number(let count)) where stored && Int(exactly: count).map({ $0 >= 0 }) == true:
                    promotions = Int(count)
                case ("ab_weight_a", .number(let weight)): weightA = weight
                case ("ab_weight_b", .number(let weight)): weightB = weight
                case ("shadow_enabled", .bool(let flag)): shadowEnabled = flag
                case ("canary_enabled", .bool(let flag)): canaryEnabled = flag
                case ("canary_step", .number(let step)) where Int(exactly: step) != nil: canaryStep = Int(step)
                case ("canary_step", _): throw APIError.invalidConfig(name, "an integer")
                case ("ab_weight_a", _), ("ab_weight_b", _): throw APIError.invalidConfig(name, "a number")
                case ("shadow_enabled", _), ("canary_enabled", _): throw APIError.invalidConfig(name, "true or false")
                default:
                    throw APIError.invalidConfig(name, "one of ab_weight_a, ab_weight_b, shadow_enabled, canary_enabled, canary_step")
                }
            }
        }
    }

    /// The switches a stored document (``json(_:)``) makes of the configured `base`: how a
    /// replica, a restart and `cortex traffic set` read what is stored.
    ///
    /// - Throws: 422 `invalid_config` when the document is not JSON or not valid switches.
    public static func settings(stored document: String, on base: CortexConfiguration.Traffic) throws(APIError)
        -> CortexConfiguration.Traffic
    {
        let json: JSONValue
        do {
            json = try JSONParser.parse(Array(document.utf8))
        } catch {
            throw APIError.invalidConfig("", "JSON (the stored traffic settings are not)")
        }
        return try applying(Change(json: json, stored: true), to: base)
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
        var next = settings
        next.weightA = change.weightA ?? next.weightA
        next.weightB = change.weightB ?? next.weightB
        next.shadowEnabled = change.shadowEnabled ?? next.shadowEnabled
        if let enabled = change.canaryEnabled {
            // Turned on afresh, the canary starts at its first step.
            if enabled, !next.canaryEnabled { next.canaryStep = 0 }
            next.canaryEnabled = enabled
        }
        if let step = change.canaryStep {
            guard next.canary.steps.indices.contains(step) else {
                throw APIError.invalidConfig("canary_step", "a step from 0 to \(next.canary.steps.count - 1) of CANARY_STEPS; got \(step)")
            }
            next.canaryStep = step
        }
        if !next.canaryEnabled { next.canaryStep = 0 }
        next.promotions = change.promotions ?? next.promotions
        guard next.weightA > 0 || next.weightB > 0 else {
            throw APIError.invalidConfig("ab_weight_a", "a weight above 0 for \(next.variantA) or \(next.variantB)")
        }
        return next
    }

    /// Serves `settings` from now on, as stored `version`; an older or equal version than the one
    /// applied is ignored (a replica's own change, then the poll that sees it).
    ///
    /// - Returns: The switches before, or `nil` when nothing changed.
    @discardableResult
    public func install(_ settings: CortexConfiguration.Traffic, version: Int64) -> CortexConfiguration.Traffic? {
        let before: CortexConfiguration.Traffic? = storage.withLock { state in
            guard version > state.version else { return nil }
            let before = state.settings
            let analysis = state.canary
            state = State(settings, version: version)
            // The same step of the same canary (this replica's own decision, stored): its evidence stays.
            if settings.canaryEnabled, before.canaryEnabled, before.canaryStep == settings.canaryStep { state.canary = analysis }
            canaryRunning.store(settings.canaryEnabled, ordering: .relaxed)
            return before
        }
        if before != nil {
            metrics?.canaryWeight(endpoint: endpoint, settings.canaryEnabled ? settings.canary.share(at: settings.canaryStep) : 0)
        }
        return before
    }

    /// The stored document of `settings`: the switches the admin API takes.
    public static func json(_ settings: CortexConfiguration.Traffic) -> String {
        var json = JSONWriter(capacity: 128)
        json.beginObject()
        write(settings, to: &json)
        json.endObject()
        return json.text
    }

    /// The switches for a log line: `vA=0.9 vB=0.1 shadow=on canary=25%`.
    static func summary(_ settings: CortexConfiguration.Traffic) -> String {
        var text = "\(settings.variantA)=\(settings.weightA) \(settings.variantB)=\(settings.weightB)"
        text += " shadow=\(settings.shadowEnabled ? "on" : "off")"
        text += settings.canaryEnabled ? " canary=\(settings.canary.share(at: settings.canaryStep) * 100)%" : " canary=off"
        return text
    }

    /// The switches as members of an object being written.
    static func write(_ settings: CortexConfiguration.Traffic, to json: inout JSONWriter) {
        json.key("ab_weight_a")
        json.number(settings.weightA)
        json.key("ab_weight_b")
        json.number(settings.weightB)
        json.member("shadow_enabled", settings.shadowEnabled)
        json.member("canary_enabled", settings.canaryEnabled)
        json.member("canary_step", settings.canaryStep)
        json.member("promotions", settings.promotions)
    }

    /// The canary's state: `{"enabled", "step", "share", "steps", "min_requests", "primary":
    /// {"requests", "error_rate", "p99_ms"}, "candidate": {...}}`, the windows those of the step
    /// being judged on this replica.
    static func writeCanary(_ settings: CortexConfiguration.Traffic, analysis: CanaryAnalysis?, to json: inout JSONWriter) {
        json.beginObject()
        json.member("enabled", settings.canaryEnabled)
        json.member("step", settings.canaryStep)
        json.key("share")
        json.number(settings.canaryEnabled ? settings.canary.share(at: settings.canaryStep) : 0)
        json.key("steps")
        json.beginArray()
        for step in settings.canary.steps { json.number(step) }
        json.endArray()
        json.member("min_requests", settings.canary.minRequests)
        if let analysis {
            for (name, window) in [("primary", analysis.primary), ("candidate", analysis.candidate)] {
                json.key(name)
                json.beginObject()
                json.member("requests", window.requests)
                json.key("error_rate")
                json.number(window.errorRate)
                json.key("p99_ms")
                json.number(window.p99 * 1000)
                json.endObject()
            }
        }
        json.endObject()
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
