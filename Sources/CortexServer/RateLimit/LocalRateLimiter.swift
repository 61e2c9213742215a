public import CortexCore
import Dispatch
import Synchronization

/// Whose budget a request spends.
public enum RateLimitKey: Hashable, Sendable {
    /// An API key, by its id.
    case apiKey(Int64)
    /// A client address, for requests without a key.
    case address(String)
    /// A tenant calling a model, whichever of its keys it uses.
    case tenantModel(Int64, String)
    /// An API key's LLM tokens (`LLM_TOKENS_PER_MINUTE`), by the key's id.
    case tokens(Int64)
}

/// Decides rate limits with ``GCRA`` in this process: one timestamp per key, under a lock.
///
/// Exact for one replica; with several, each enforces the limit on its own share of the traffic
/// (the shared limiter over Redis comes with `REDIS_URL`).
public final class LocalRateLimiter: Sendable {
    /// Keys kept before fully refilled ones are dropped (a dropped key is the same as a full bucket).
    static let maximumKeys = 100_000

    private let state = Mutex<[RateLimitKey: Int64]>([:])
    private let now: @Sendable () -> Int64

    /// Creates a limiter on `now`, nanoseconds on a monotonic clock (tests pass their own).
    public init(now: @escaping @Sendable () -> Int64 = LocalRateLimiter.monotonicNanoseconds) {
        self.now = now
    }

    /// Decides one request for `key` under `limit`, and records it when allowed (or `force`d).
    public func decide(key: RateLimitKey, limit: GCRA, cost: Int = 1, force: Bool = false) -> GCRA.Decision {
        let time = now()
        return state.withLock { state in
            let decision = limit.decide(now: time, tat: state[key], cost: cost, force: force)
            if decision.allowed || force {
                if state.count >= Self.maximumKeys, state[key] == nil {
                    state = state.filter { $0.value > time }
                }
                state[key] = decision.tat
            }
            return decision
        }
    }

    /// Nanoseconds since an arbitrary start, never going back.
    @Sendable public static func monotonicNanoseconds() -> Int64 {
        Int64(clamping: DispatchTime.now().uptimeNanoseconds)
    }
}
