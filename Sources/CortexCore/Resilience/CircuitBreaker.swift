/// A circuit breaker for one upstream (an LLM provider): closed while calls succeed, open for a
/// cooldown after `failureThreshold` consecutive failures (calls are not attempted), then
/// half-open: one probe call is let through, and its outcome closes or reopens the circuit.
///
/// A value type with the clock passed in (nanoseconds on a monotonic clock), so every transition
/// is tested without I/O or sleeps; the caller keeps it behind a lock and logs the transitions.
public struct CircuitBreaker: Sendable, Hashable {
    /// Where the circuit is.
    public enum State: Sendable, Hashable {
        /// Calls go through; `failures` consecutive ones have failed so far.
        case closed(failures: Int)
        /// Calls are refused until `until`.
        case open(until: Int64)
        /// One probe is allowed; `probing` while it is in flight.
        case halfOpen(probing: Bool)

        /// `closed`, `open` or `half_open`, for logs and metrics.
        public var name: String {
            switch self {
            case .closed: "closed"
            case .open: "open"
            case .halfOpen: "half_open"
            }
        }
    }

    /// A change of state worth logging.
    public enum Transition: String, Sendable, Hashable {
        case opened, halfOpened = "half_opened", closed
    }

    /// Consecutive failures that open the circuit (at least 1).
    public let failureThreshold: Int
    /// How long the circuit stays open, in nanoseconds.
    public let cooldown: Int64
    public private(set) var state: State = .closed(failures: 0)

    /// A closed breaker.
    public init(failureThreshold: Int = 3, cooldown: Duration = .seconds(10)) {
        self.failureThreshold = max(1, failureThreshold)
        let (seconds, attoseconds) = cooldown.components
        self.cooldown = max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// Whether a call may be attempted at `now`; an open circuit whose cooldown is over lets one
    /// probe through (half-open).
    public mutating func allow(now: Int64) -> (allowed: Bool, transition: Transition?) {
        switch state {
        case .closed:
            return (true, nil)
        case .open(let until):
            guard now >= until else { return (false, nil) }
            state = .halfOpen(probing: true)
            return (true, .halfOpened)
        case .halfOpen(let probing):
            guard !probing else { return (false, nil) }
            state = .halfOpen(probing: true)
            return (true, nil)
        }
    }

    /// Records a call that succeeded.
    public mutating func recordSuccess() -> Transition? {
        switch state {
        case .closed:
            state = .closed(failures: 0)
            return nil
        case .halfOpen, .open:
            state = .closed(failures: 0)
            return .closed
        }
    }

    /// Records a call that failed at `now` (an upstream fault: connection error, timeout, 5xx, 429).
    public mutating func recordFailure(now: Int64) -> Transition? {
        switch state {
        case .closed(let failures):
            guard failures + 1 >= failureThreshold else {
                state = .closed(failures: failures + 1)
                return nil
            }
            state = .open(until: now &+ cooldown)
            return .opened
        case .halfOpen:
            state = .open(until: now &+ cooldown)
            return .opened
        case .open:
            // A call let through before the circuit opened: keep the cooldown that runs.
            return nil
        }
    }

    /// Whether calls are refused at `now` (open, cooldown not over).
    public func isOpen(now: Int64) -> Bool {
        if case .open(let until) = state { return now < until }
        return false
    }
}
