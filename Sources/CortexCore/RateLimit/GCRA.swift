/// The generic cell rate algorithm: an exact, O(1) rate limit with one timestamp of state per key.
///
/// A limit of `rate` requests per second with bursts of up to `burst` is the same as a bucket of
/// `burst` tokens refilled at `rate`, but GCRA keeps only the *theoretical arrival time* (TAT):
/// when the bucket would be full again. Each request moves the TAT one emission interval
/// (1/`rate`) later; a request is refused while it would move the TAT more than `burst`
/// intervals past now.
///
/// ```swift
/// let limit = GCRA(rate: 5, burst: 5)
/// var tat: Int64? = nil
/// let decision = limit.decide(now: clock, tat: tat)
/// tat = decision.tat
/// ```
///
/// Times are nanoseconds on any monotonic clock the caller chooses (a test passes its own).
public struct GCRA: Sendable, Hashable {
    /// Nanoseconds between requests at the sustained rate.
    public let emissionInterval: Int64
    /// Requests allowed at once from a full bucket.
    public let burst: Int

    /// A limit of `rate` requests per second (above 0) with bursts of `burst` (at least 1).
    public init(rate: Double, burst: Int) {
        precondition(rate > 0 && rate.isFinite, "a rate limit needs a positive rate")
        self.emissionInterval = max(Int64((1_000_000_000 / rate).rounded()), 1)
        self.burst = max(burst, 1)
    }

    /// What one request gets.
    public struct Decision: Sendable, Hashable {
        /// Whether the request may go ahead.
        public var allowed: Bool
        /// The key's state to keep: unchanged when refused.
        public var tat: Int64
        /// Requests still allowed right now after this one.
        public var remaining: Int
        /// Nanoseconds until a refused request would be allowed (0 when allowed).
        public var retryAfter: Int64
        /// Nanoseconds until the bucket is full again.
        public var resetAfter: Int64

        /// Creates a decision (a shared limiter builds them from its backend's answer).
        public init(allowed: Bool, tat: Int64, remaining: Int, retryAfter: Int64, resetAfter: Int64) {
            self.allowed = allowed
            self.tat = tat
            self.remaining = remaining
            self.retryAfter = retryAfter
            self.resetAfter = resetAfter
        }
    }

    /// Decides one request at `now` for a key whose state is `tat` (`nil` for a key not seen yet).
    ///
    /// - Parameters:
    ///   - cost: Units the request spends (1 for a request; tokens for a token budget). `0` only
    ///     asks whether the key is within its budget, spending nothing.
    ///   - force: Spend even when refused (a cost known only after the work, such as an LLM's
    ///     tokens): the key may run past its budget, and is refused until it is back within it.
    public func decide(now: Int64, tat: Int64?, cost: Int = 1, force: Bool = false) -> Decision {
        let window = emissionInterval * Int64(burst)
        let current = max(tat ?? now, now)
        let (spent, overflow) = emissionInterval.multipliedReportingOverflow(by: Int64(max(cost, 0)))
        let next = overflow ? Int64.max / 2 : current + spent
        // The earliest time this request fits: `burst` intervals before the new TAT.
        let allowedAt = next - window
        guard now >= allowedAt || force else {
            return Decision(
                allowed: false,
                tat: current,
                remaining: 0,
                retryAfter: allowedAt - now,
                resetAfter: current - now
            )
        }
        return Decision(
            allowed: now >= allowedAt,
            tat: next,
            remaining: max(0, Int((now - allowedAt) / emissionInterval)),
            retryAfter: max(0, allowedAt - now),
            resetAfter: next - now
        )
    }
}
