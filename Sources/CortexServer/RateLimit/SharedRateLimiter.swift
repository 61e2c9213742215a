public import CortexCore
public import CortexStore
public import Foundation
public import Logging
import Synchronization

/// Something that decides rate limits: this process alone, or all replicas through Redis.
public protocol RateLimiting: Sendable {
    /// Decides one request for `key` under `limit` spending `cost` units, recording it when
    /// allowed or `force`d (see ``GCRA/decide(now:tat:cost:force:)``).
    func decide(key: RateLimitKey, limit: GCRA, cost: Int, force: Bool) async -> GCRA.Decision
}

extension RateLimiting {
    /// Decides one request of cost 1.
    public func decide(key: RateLimitKey, limit: GCRA) async -> GCRA.Decision {
        await decide(key: key, limit: limit, cost: 1, force: false)
    }
}

extension LocalRateLimiter: RateLimiting {}

/// Shared limits through Redis, with this process's own limiter as the fallback.
///
/// Every decision goes to Redis (one script call, a deadline of `REDIS_TIMEOUT_MS`). When Redis
/// errors or is slow, the request is decided locally instead, never failed, and the limiter
/// switches to local decisions, logging `RATE_LIMIT_FALLBACK` once; it then tries Redis again
/// once per `probeInterval` and switches back by itself, logging the return once too.
public final class SharedRateLimiter: RateLimiting {
    private struct State {
        var shared = true
        var since = Date()
        var reason = ""
        var nextProbe = ContinuousClock.now
    }

    let redis: RedisRateLimit
    let local: LocalRateLimiter
    let location: String
    let probeInterval: Duration
    private let metrics: ServerMetrics
    private let logger: Logger
    private let state = Mutex(State())

    /// Creates the limiter; `location` names Redis in logs and `/ready` (no password).
    public init(
        redis: RedisRateLimit,
        local: LocalRateLimiter,
        location: String,
        probeInterval: Duration = .seconds(1),
        metrics: ServerMetrics,
        logger: Logger
    ) {
        self.redis = redis
        self.local = local
        self.location = location
        self.probeInterval = probeInterval
        self.metrics = metrics
        self.logger = logger
        metrics.rateLimitBackendUp.record(1)
    }

    public func decide(key: RateLimitKey, limit: GCRA, cost: Int, force: Bool) async -> GCRA.Decision {
        let attempt = state.withLock { state in
            if state.shared { return true }
            let now = ContinuousClock.now
            guard now >= state.nextProbe else { return false }
            state.nextProbe = now + probeInterval
            return true
        }
        if attempt {
            do {
                let decision = try await redis.decide(key: key.redisKey, limit: limit, cost: cost, force: force)
                record(shared: true, reason: "redis answered")
                return decision
            } catch {
                record(shared: false, reason: "\(error)")
            }
        }
        return local.decide(key: key, limit: limit, cost: cost, force: force)
    }

    /// Asks Redis for `PING` and switches to shared or local decisions by the answer, so that the
    /// state in `/ready` and `/status` is true even before the first request (and shared limits
    /// return while no traffic arrives). The readiness checks call it.
    public func check() async {
        do {
            try await redis.ping()
            record(shared: true, reason: "redis answered")
        } catch {
            record(shared: false, reason: "\(error)")
        }
    }

    /// Whether decisions are shared right now, since when, and why they are not.
    public var status: (shared: Bool, since: Date, reason: String) {
        state.withLock { ($0.shared, $0.since, $0.reason) }
    }

    private func record(shared: Bool, reason: String) {
        let changed = state.withLock { state in
            guard state.shared != shared else { return false }
            state.shared = shared
            state.since = Date()
            state.reason = reason
            state.nextProbe = ContinuousClock.now + probeInterval
            return true
        }
        guard changed else { return }
        metrics.rateLimitBackendUp.record(shared ? 1 : 0)
        if shared {
            logger.notice("RATE_LIMIT_FALLBACK", metadata: ["state": "shared", "redis": "\(location)"])
        } else {
            logger.warning("RATE_LIMIT_FALLBACK", metadata: ["state": "local", "redis": "\(location)", "reason": "\(reason)"])
        }
    }
}

extension RateLimitKey {
    /// The key's name in Redis.
    var redisKey: String {
        switch self {
        case .apiKey(let id): "key:\(id)"
        case .address(let address): "addr:\(address)"
        case .tenantModel(let tenant, let model): "tm:\(tenant):\(model)"
        case .tokens(let id): "tok:\(id)"
        }
    }
}
