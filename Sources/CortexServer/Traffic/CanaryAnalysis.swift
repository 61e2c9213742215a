/// How a canary steps up and what counts as a breach (`CANARY_STEPS`, `CANARY_MIN_REQUESTS`, ...).
public struct CanaryPolicy: Sendable, Equatable {
    /// The candidate's (`vB`'s) share at each step, in percent, increasing; reaching 100 (or passing
    /// the last step) promotes it.
    public var steps: [Double] = [5, 25, 50, 100]
    /// Requests each variant must have answered in a step before the step is judged.
    public var minRequests = 200
    /// How far the candidate's error rate may exceed the primary's (a fraction: 0.02 is 2 points).
    public var maxErrorRateIncrease = 0.02
    /// The candidate's p99 latency may be at most this many times the primary's ...
    public var maxLatencyRatio = 1.5
    /// ... plus this many milliseconds, so microsecond-scale noise on a small model is no breach.
    public var latencyAllowanceMilliseconds = 5.0

    public init() {}

    /// The candidate's share (0 to 1) at `step`; past the last step, all of it.
    public func share(at step: Int) -> Double {
        guard steps.indices.contains(step) else { return 1 }
        return min(1, max(0, steps[step] / 100))
    }
}

/// The canary's analysis: a value-type state machine fed each request's outcome and model latency
/// by variant, with no I/O and no clock, that says when to step up, promote or roll back.
///
/// A step is judged once both the primary (`vA`) and the candidate (`vB`) have answered
/// ``CanaryPolicy/minRequests`` in it:
/// - the candidate's error rate above the primary's plus ``CanaryPolicy/maxErrorRateIncrease``,
///   or its p99 above ``CanaryPolicy/maxLatencyRatio`` times the primary's plus the allowance:
///   roll back (the candidate to 0 at once);
/// - otherwise the next step, or promotion when the next step is 100% (or there is none).
///
/// Client errors (4xx) are no evidence either way and are not recorded; only answers the model
/// gave or failed to give are.
public struct CanaryAnalysis: Sendable, Equatable {
    /// One variant's requests in the current step.
    public struct Window: Sendable, Equatable {
        public private(set) var requests = 0
        public private(set) var errors = 0
        /// Model latencies of successful requests, in seconds (the first ``capacity``).
        private(set) var latencies: [Double] = []
        static let capacity = 1 << 16

        mutating func record(success: Bool, latency: Double) {
            requests += 1
            if !success {
                errors += 1
            } else if latencies.count < Self.capacity {
                latencies.append(latency)
            }
        }

        public var errorRate: Double { requests == 0 ? 0 : Double(errors) / Double(requests) }

        /// The nearest-rank 99th percentile of the successful requests' latencies; 0 without any.
        public var p99: Double {
            guard !latencies.isEmpty else { return 0 }
            let sorted = latencies.sorted()
            let rank = Int((0.99 * Double(sorted.count)).rounded(.up))
            return sorted[max(0, min(sorted.count - 1, rank - 1))]
        }
    }

    /// The figures a decision was made on, for its log line.
    public struct Figures: Sendable, Equatable {
        /// The candidate's share in the step judged (0 to 1).
        public var share: Double
        public var primaryRequests: Int
        public var primaryErrorRate: Double
        public var primaryP99: Double
        public var candidateRequests: Int
        public var candidateErrorRate: Double
        public var candidateP99: Double
    }

    /// What the analysis decided.
    public enum Decision: Sendable, Equatable {
        /// The step passed: go to step `to`.
        case step(to: Int, Figures)
        /// The last step passed: the candidate takes all the traffic.
        case promote(Figures)
        /// A breach (`reason`): the candidate goes back to 0.
        case rollBack(reason: String, Figures)
    }

    public let policy: CanaryPolicy
    /// The step being judged.
    public private(set) var step: Int
    public private(set) var primary = Window()
    public private(set) var candidate = Window()
    /// Set once it has promoted or rolled back; nothing more is recorded.
    public private(set) var finished = false

    public init(policy: CanaryPolicy, step: Int = 0) {
        self.policy = policy
        self.step = step
    }

    /// Records one request's outcome; returns a decision when this request completes the step's
    /// evidence. After a decision the windows start afresh (for the next step) or recording stops.
    public mutating func record(candidate isCandidate: Bool, success: Bool, latency: Double) -> Decision? {
        guard !finished else { return nil }
        if isCandidate {
            candidate.record(success: success, latency: latency)
        } else {
            primary.record(success: success, latency: latency)
        }
        guard primary.requests >= policy.minRequests, candidate.requests >= policy.minRequests else { return nil }
        let figures = Figures(
            share: policy.share(at: step),
            primaryRequests: primary.requests, primaryErrorRate: primary.errorRate, primaryP99: primary.p99,
            candidateRequests: candidate.requests, candidateErrorRate: candidate.errorRate, candidateP99: candidate.p99)
        primary = Window()
        candidate = Window()
        if figures.candidateErrorRate > figures.primaryErrorRate + policy.maxErrorRateIncrease {
            finished = true
            return .rollBack(reason: "error rate", figures)
        }
        if figures.candidateP99 > figures.primaryP99 * policy.maxLatencyRatio + policy.latencyAllowanceMilliseconds / 1000 {
            finished = true
            return .rollBack(reason: "p99 latency", figures)
        }
        let next = step + 1
        if policy.share(at: next) >= 1 {
            finished = true
            return .promote(figures)
        }
        step = next
        return .step(to: next, figures)
    }
}
