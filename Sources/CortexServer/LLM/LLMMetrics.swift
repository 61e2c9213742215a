import CoreMetrics
import CortexRuntime
public import Metrics
import Synchronization

/// The `llm_*` metrics of one deployment, with handles cached per label set.
public final class LLMMetrics: Sendable {
    /// How an attempt at a provider ended, as `llm_requests_total{outcome}` counts it.
    enum Outcome: String, Sendable {
        /// The provider answered (a whole answer, or a stream to its end).
        case success
        /// A stream ended with an error after its first token.
        case cut
        /// The provider failed (unreachable, timeout, 5xx, 429, a broken answer); the chain moved on.
        case error
        /// The provider refused the request itself (a 4xx): the client's fault.
        case rejected
        /// Not attempted: its circuit was open.
        case circuitOpen = "circuit_open"
    }

    private struct Key: Hashable {
        var provider: String
        var outcome: String
    }

    let factory: any MetricsFactory
    let deployment: String
    private let requests = Mutex<[Key: Counter]>([:])
    private let fallbacks = Mutex<[Key: Counter]>([:])
    private let up = Mutex<[String: Gauge]>([:])
    /// `llm_tokens_total{deployment,model,type}` (`prompt`, `completion`): tokens billed, by the
    /// model of the provider that answered.
    private let tokens = Mutex<[String: (prompt: Counter, completion: Counter)]>([:])
    /// `llm_time_to_first_token_seconds{deployment}`: from the request to the first token, streams only.
    let timeToFirstToken: Timer
    /// `llm_path{deployment,path}`: 1 for the path in force (`warming`, `primary`, `fallback`), 0 for the others.
    private let paths: [LLMPath: Gauge]

    init(factory: any MetricsFactory, deployment: String) {
        self.factory = factory
        self.deployment = deployment
        self.timeToFirstToken = Timer(label: "llm_time_to_first_token_seconds", dimensions: [("deployment", deployment)], factory: factory)
        var paths: [LLMPath: Gauge] = [:]
        for path in [LLMPath.warming, .primary, .fallback] {
            paths[path] = Gauge(label: "llm_path", dimensions: [("deployment", deployment), ("path", path.rawValue)], factory: factory)
        }
        self.paths = paths
    }

    /// Marks `path` as the one in force.
    func setPath(_ path: LLMPath) {
        for (candidate, gauge) in paths { gauge.record(candidate == path ? 1 : 0) }
    }

    /// `llm_requests_total{deployment,provider,outcome}`.
    func record(provider: String, _ outcome: Outcome) {
        let key = Key(provider: provider, outcome: outcome.rawValue)
        let counter = requests.withLock { cache in
            if let counter = cache[key] { return counter }
            let counter = Counter(
                label: "llm_requests_total",
                dimensions: [("deployment", deployment), ("provider", provider), ("outcome", outcome.rawValue)],
                factory: factory
            )
            cache[key] = counter
            return counter
        }
        counter.increment()
    }

    /// `llm_fallback_total{deployment,from,to}`: a request moved from one provider to the next.
    func recordFallback(from: String, to: String) {
        let key = Key(provider: from, outcome: to)
        let counter = fallbacks.withLock { cache in
            if let counter = cache[key] { return counter }
            let counter = Counter(
                label: "llm_fallback_total", dimensions: [("deployment", deployment), ("from", from), ("to", to)], factory: factory)
            cache[key] = counter
            return counter
        }
        counter.increment()
    }

    /// `llm_provider_up{deployment,provider}`: 1 while the provider's circuit is closed.
    func setUp(_ provider: String, _ isUp: Bool) {
        let gauge = up.withLock { cache in
            if let gauge = cache[provider] { return gauge }
            let gauge = Gauge(label: "llm_provider_up", dimensions: [("deployment", deployment), ("provider", provider)], factory: factory)
            cache[provider] = gauge
            return gauge
        }
        gauge.record(isUp ? 1 : 0)
    }

    /// Tokens billed for one request answered by `model`.
    func recordTokens(_ usage: TokenUsage, model: String) {
        let (prompt, completion) = tokens.withLock { cache in
            if let counters = cache[model] { return counters }
            func counter(_ type: String) -> Counter {
                Counter(
                    label: "llm_tokens_total", dimensions: [("deployment", deployment), ("model", model), ("type", type)], factory: factory)
            }
            let counters = (counter("prompt"), counter("completion"))
            cache[model] = counters
            return counters
        }
        prompt.increment(by: usage.promptTokens)
        completion.increment(by: usage.completionTokens)
    }
}
