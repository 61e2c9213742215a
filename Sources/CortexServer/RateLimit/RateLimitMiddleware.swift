public import CortexCore
public import Hummingbird

/// Refuses requests over the rate limit with 429, before any inference or billing.
///
/// The limit applies per API key, or per client address for anonymous requests
/// (`REQUIRE_API_KEY=false`). Every answer carries `RateLimit-Limit` (the burst),
/// `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the bucket is full again); a 429
/// also carries `Retry-After` and `retry_after_s`.
public struct RateLimitMiddleware<Context: AuthenticatedContext & RemoteAddressRequestContext>: RouterMiddleware {
    let limiter: any RateLimiting
    let limit: GCRA
    let metrics: ServerMetrics
    /// `RateLimit-Limit`, the same on every answer.
    private let limitHeader: String

    /// Creates the middleware for `limit`.
    public init(limiter: any RateLimiting, limit: GCRA, metrics: ServerMetrics) {
        self.limiter = limiter
        self.limit = limit
        self.metrics = metrics
        self.limitHeader = String(limit.burst)
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let decision = await limiter.decide(key: Self.key(for: context), limit: limit)
        guard decision.allowed else {
            metrics.rateLimitDecisions(limited: true)
            let retry = Double(decision.retryAfter) / 1_000_000_000
            context.logger.info("RATE_LIMITED", metadata: ["retry_after_s": .stringConvertible(retry)])
            var response = APIError(
                status: 429,
                code: "rate_limited",
                message: "rate limit exceeded: \(limit.burst) requests at once, then one every \(Double(limit.emissionInterval) / 1e9) s",
                fields: [("retry_after_s", .double(retry))]
            ).response(requestID: context.requestID)
            addHeaders(decision, to: &response.headers)
            return response
        }
        metrics.rateLimitDecisions(limited: false)
        var response = try await next(request, context)
        addHeaders(decision, to: &response.headers)
        return response
    }

    /// The key's id when a key was presented, the client's address otherwise.
    static func key(for context: Context) -> RateLimitKey {
        if let principal = context.principal { return .apiKey(principal.key.id) }
        return .address(context.remoteAddress?.ipAddress ?? "unknown")
    }

    private func addHeaders(_ decision: GCRA.Decision, to headers: inout HTTPFields) {
        headers[.rateLimitLimit] = limitHeader
        headers[.rateLimitRemaining] = String(decision.remaining)
        headers[.rateLimitReset] = String((decision.resetAfter + 999_999_999) / 1_000_000_000)
    }
}
