/// The result of evaluating every readiness check.
public struct ReadinessReport: Sendable {
    /// One named check.
    public struct Check: Sendable {
        /// `database`, `models`, `disk` or `draining`.
        public var name: String
        /// Whether it passes.
        public var ok: Bool
        /// What was found, for a person.
        public var detail: String
    }

    /// Every check, in a fixed order.
    public var checks: [Check]

    /// Whether every check passes.
    public var isReady: Bool { checks.allSatisfy(\.ok) }

    /// Names of the failing checks.
    public var failing: [String] { checks.filter { !$0.ok }.map(\.name) }
}
