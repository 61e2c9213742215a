public import CortexCore
import CortexRuntime

/// Tokens per API key per minute (`LLM_TOKENS_PER_MINUTE`), through the same limiter as request
/// rates: in this process, or shared by every replica through Redis.
///
/// An LLM request's tokens are known only once it has finished, so the limit is checked before
/// (a key already past its budget gets 429 with `Retry-After`) and the tokens are spent after,
/// exactly. One request can take a key past its budget; the key then waits until the budget has
/// refilled that far.
public struct TokenRateLimits: Sendable {
    let limiter: any RateLimiting
    let limit: GCRA?
    let metrics: ServerMetrics

    /// Creates the gate; `limit` `nil` turns it off.
    public init(limiter: any RateLimiting, limit: GCRA?, metrics: ServerMetrics) {
        self.limiter = limiter
        self.limit = limit
        self.metrics = metrics
    }

    /// Refuses with 429 when the caller's key is past its token budget. Requests without a key are not limited.
    func check(context: some AuthenticatedContext) async throws(APIError) {
        guard let limit, let principal = context.principal else { return }
        let decision = await limiter.decide(key: .tokens(principal.key.id), limit: limit, cost: 0, force: false)
        metrics.rateLimitDecisions(limited: !decision.allowed)
        guard !decision.allowed else { return }
        let retry = Double(decision.retryAfter) / 1_000_000_000
        context.logger.info("RATE_LIMITED", metadata: ["scope": "tokens", "retry_after_s": .stringConvertible(retry)])
        throw APIError(
            status: 429,
            code: "token_rate_limited",
            message: "this API key used its \(limit.burst) tokens per minute; retry after the budget refills",
            fields: [("retry_after_s", .double(retry))]
        )
    }

    /// Spends a finished request's tokens on the caller's key (nothing without a limit or a key).
    func spender(context: some AuthenticatedContext) -> @Sendable (TokenUsage) async -> Void {
        guard let limit, let keyID = context.principal?.key.id else { return { _ in } }
        let limiter = self.limiter
        return { tokens in
            _ = await limiter.decide(key: .tokens(keyID), limit: limit, cost: tokens.promptTokens + tokens.completionTokens, force: true)
        }
    }
}
