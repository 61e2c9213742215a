public import CortexCore
public import Hummingbird

/// Limits per tenant and model (`RATE_LIMIT_OVERRIDES`): one budget for all of a tenant's keys on
/// one model, on top of the per-key limit. Checked once the model is known and before anything
/// is held or run.
public struct ModelRateLimits: Sendable {
    let limiter: any RateLimiting
    let configuration: CortexConfiguration.RateLimit
    let metrics: ServerMetrics

    /// Creates the gate.
    public init(limiter: any RateLimiting, configuration: CortexConfiguration.RateLimit, metrics: ServerMetrics) {
        self.limiter = limiter
        self.configuration = configuration
        self.metrics = metrics
    }

    /// Refuses with 429 when the caller's tenant is over its limit for `model`.
    public func check(model: String, context: some AuthenticatedContext) async throws(APIError) {
        guard !configuration.overrides.isEmpty, let principal = context.principal,
            let limit = configuration.override(tenant: principal.tenant.name, model: model)
        else { return }
        let decision = await limiter.decide(key: .tenantModel(principal.tenant.id, model), limit: limit)
        metrics.rateLimitDecisions(limited: !decision.allowed)
        guard !decision.allowed else { return }
        let retry = Double(decision.retryAfter) / 1_000_000_000
        context.logger.info(
            "RATE_LIMITED", metadata: ["model": "\(model)", "scope": "tenant_model", "retry_after_s": .stringConvertible(retry)])
        throw APIError(
            status: 429,
            code: "rate_limited",
            message: "tenant '\(principal.tenant.name)' is over its rate limit for model '\(model)' (\(limit.burst) at once)",
            fields: [("retry_after_s", .double(retry))]
        )
    }
}
