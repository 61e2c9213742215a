import CortexCore
import Foundation

extension CortexConfiguration {
    /// A human-readable listing of the effective settings; secrets (API keys) are counted, never shown.
    public var summary: String {
        var lines: [String] = []
        lines.append("server.host: \(server.host)")
        lines.append("server.port: \(server.port)")
        lines.append("server.max_body_bytes: \(server.maxBodyBytes)")
        lines.append("server.drain_timeout_s: \(server.drainTimeoutSeconds)")
        lines.append("server.drain_delay_s: \(server.drainDelaySeconds)")
        lines.append("log.level: \(log.level.rawValue)")
        lines.append("log.format: \(log.format.rawValue)")
        switch database {
        case .sqlite(let path): lines.append("database.url: sqlite://\(path)")
        case .postgres(let url): lines.append("database.url: \(RedactedURL.redacting(url))")
        }
        lines.append("readiness.min_free_disk_mb: \(readiness.minFreeDiskMB)")
        lines.append("readiness.interval_s: \(readiness.monitorIntervalSeconds)")
        lines.append("auth.require_api_key: \(auth.requireAPIKey)")
        lines.append("auth.api_keys: \(auth.apiKeys.count) key(s)")
        lines.append("auth.demo: \(auth.demo.rawValue) (\(auth.demoEnabled(host: server.host) ? "on" : "off") for host \(server.host))")
        lines.append("auth.cache_ttl_s: \(auth.cacheTTLSeconds)")
        lines.append("auth.admin_token: \(auth.adminToken == nil ? "not set" : "set")")
        let prices = billing.prices.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        lines.append("billing.prices: \(prices.isEmpty ? "(none)" : prices.joined(separator: ","))")
        lines.append("billing.default_price: \(billing.defaultPrice)")
        lines.append("billing.hold_ttl_s: \(billing.holdTTLSeconds)")
        lines.append("billing.sweep_interval_s: \(billing.sweepIntervalSeconds)")
        lines.append("billing.demo_credits: \(billing.demoCredits)")
        lines.append(
            "rate_limit: "
                + (rateLimit.limit.map { "\(rateLimit.requestsPerSecond)/s per key, burst \($0.burst)" } ?? "off (RATE_LIMIT_RPS=0)")
        )
        let overrides = rateLimit.overrides.map { "\($0.tenant)/\($0.model)=\($0.requestsPerSecond):\($0.burst)" }
        lines.append("rate_limit.overrides: \(overrides.isEmpty ? "(none)" : overrides.joined(separator: ","))")
        lines.append(
            "rate_limit.redis_url: \(rateLimit.redisURL.map(RedactedURL.redacting) ?? "not set (limits per process)"), timeout \(rateLimit.redisTimeoutMilliseconds) ms"
        )
        if llm.isEnabled {
            for (role, provider) in zip(["primary", "fallback"], [llm.primary, llm.fallback]) where !provider.url.isEmpty {
                lines.append(
                    "llm.\(role): \(provider.kind.rawValue) at \(provider.url), model \(provider.model)"
                        + (provider.apiKey == nil ? "" : ", api key set"))
            }
            lines.append("llm.deployment: \(llm.deployment)")
            lines.append(
                "llm.timeouts: connect \(llm.connectTimeoutSeconds) s, first token \(llm.firstTokenTimeoutSeconds) s, total \(llm.totalTimeoutSeconds) s"
            )
            lines.append("llm.primary_poll: every \(llm.pollIntervalSeconds) s for at most \(llm.pollMaxSeconds) s")
            lines.append("llm.breaker: opens after \(llm.breakerFailures) failures for \(llm.breakerCooldownSeconds) s")
            lines.append("llm.prices: \(llm.inputPricePer1K) in, \(llm.outputPricePer1K) out per 1,000 tokens")
            lines.append("llm.max_tokens: \(llm.defaultMaxTokens) by default, at most \(llm.maxTokensLimit)")
            lines.append("llm.tokens_per_minute: \(llm.tokensPerMinute == 0 ? "off" : "\(llm.tokensPerMinute) per API key")")
            lines.append("llm.allowed_origins: \(llm.allowedOrigins.isEmpty ? "(none)" : llm.allowedOrigins.joined(separator: ","))")
        } else {
            lines.append("llm: off (LLM_PRIMARY_URL not set)")
        }
        for deployment in moreLLMDeployments {
            let chain = deployment.providers.map { "\($0.kind.rawValue) \($0.url) \($0.model)\($0.apiKey == nil ? "" : " (api key set)")" }
            lines.append(
                "llm.deployments: \(deployment.deployment): \(chain.joined(separator: " -> ")); "
                    + "\(deployment.inputPricePer1K) in, \(deployment.outputPricePer1K) out per 1,000 tokens")
        }
        lines.append("scoring.model: \(scoringModel ?? "(first tabular model)")")
        lines.append("image.model: \(imageModel)")
        lines.append("image.max_pixels: \(imageMaxPixels)")
        lines.append("onnx.library: \(onnx.library ?? "(found: ORT_DYLIB_PATH, .venv, then the system's python3)")")
        for model in models {
            lines.append("models: \(model.name) at \(model.path)" + (model.version.map { " version \($0)" } ?? ""))
        }
        return lines.joined(separator: "\n")
    }
}
