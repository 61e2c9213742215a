public import CoreMetrics
public import CortexCore
public import CortexRuntime
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// The configured LLM deployment: its provider chain with a circuit breaker per provider, the
/// primary's warm-up, per-token prices, and the `llm_*` metrics and log events.
///
/// Which providers a request may use follows the LLM assistant's `llm.path`: while the primary is
/// `warming` (its model not pulled yet) or after its poll budget ran out (`fallback`), requests
/// start at the fallback; once `primary`, at the primary, falling back per request on its faults.
/// Warming without a fallback refuses with 503 and `Retry-After`, and `/ready` says so.
public final class LLMGateway: Service {
    public let configuration: CortexConfiguration.LLM
    let chain: ProviderChain
    /// Polls the primary's model list until its model is present.
    public let warmup: PrimaryWarmup
    let metrics: LLMMetrics
    let logger: Logger
    /// The provider that answered last, for `/status/summary`'s `fallback`.
    private let lastProvider = Mutex<String?>(nil)

    /// A gateway for `configuration` (which must have at least a primary).
    ///
    /// - Parameter now: Nanoseconds on a monotonic clock for the breakers (tests pass their own).
    public init(
        configuration: CortexConfiguration.LLM,
        metricsFactory: any MetricsFactory,
        logger: Logger,
        now: (@Sendable () -> Int64)? = nil
    ) {
        self.configuration = configuration
        self.logger = logger
        let timeouts = ProviderTimeouts(
            connect: .seconds(configuration.connectTimeoutSeconds),
            firstToken: .seconds(configuration.firstTokenTimeoutSeconds),
            total: .seconds(configuration.totalTimeoutSeconds)
        )
        let providers: [any LLMProvider] = configuration.providers.enumerated().map { index, provider in
            let role = index == 0 ? "primary" : index == 1 ? "fallback" : "fallback\(index)"
            let name = "\(role)-\(provider.kind.rawValue)"
            switch provider.kind {
            case .ollama:
                return OllamaProvider(name: name, baseURL: provider.url, model: provider.model, timeouts: timeouts)
            case .openai:
                return OpenAICompatibleProvider(
                    name: name, baseURL: provider.url, model: provider.model, apiKey: provider.apiKey, timeouts: timeouts)
            }
        }
        let metrics = LLMMetrics(factory: metricsFactory, deployment: configuration.deployment)
        self.metrics = metrics
        for provider in providers { metrics.setUp(provider.name, true) }
        metrics.setPath(.warming)
        self.chain = ProviderChain(
            providers: providers,
            breaker: CircuitBreaker(
                failureThreshold: configuration.breakerFailures, cooldown: .seconds(configuration.breakerCooldownSeconds)),
            now: now,
            onTransition: { provider, transition in
                metrics.setUp(provider, transition == .closed)
                logger.log(
                    level: transition == .opened ? .warning : .notice,
                    "LLM_BREAKER",
                    metadata: ["provider": "\(provider)", "transition": "\(transition.rawValue)"]
                )
            }
        )
        let deployment = configuration.deployment
        self.warmup = PrimaryWarmup(
            primary: providers[0],
            hasFallback: providers.count > 1,
            interval: .seconds(configuration.pollIntervalSeconds),
            budget: .seconds(configuration.pollMaxSeconds),
            onChange: { path, reason in
                metrics.setPath(path)
                logger.log(
                    level: path == .fallback ? .warning : .notice,
                    "LLM_PATH_CHANGED",
                    metadata: ["deployment": "\(deployment)", "path": "\(path.rawValue)", "reason": "\(reason)"]
                )
            }
        )
    }

    /// Polls the primary (`PRIMARY_POLL_INTERVAL_S`, `PRIMARY_POLL_MAX_S`) until its model is
    /// present or the budget is spent, then stays up until the group shuts down; polling stops
    /// at once on shutdown.
    public func run() async throws {
        let warmup = self.warmup
        await cancelWhenGracefulShutdown { await warmup.run() }
        try? await gracefulShutdown()
    }

    /// Counts the tokens billed for a request `provider` answered, under its model.
    func recordTokens(_ usage: TokenUsage, provider: String) {
        metrics.recordTokens(usage, model: chain.providers.first { $0.name == provider }?.model ?? provider)
    }

    /// The providers' names, primary first.
    public var providerNames: [String] { chain.providers.map(\.name) }

    /// Whether requests are currently answered by a fallback: the path is not `primary`, or the
    /// last answer came from a provider after the primary.
    public var isFallbackActive: Bool {
        guard warmup.path == .primary else { return chain.providers.count > 1 }
        return lastProvider.withLock { $0 }.map { $0 != chain.providers[0].name } ?? false
    }

    /// Each provider's circuit state, primary first.
    public var breakerStates: [CircuitBreaker.State] { chain.states }

    /// Where requests start in the chain now.
    ///
    /// - Throws: 503 `llm_warming` with `Retry-After` while the primary warms without a fallback.
    func firstProvider() throws(APIError) -> Int {
        switch warmup.path {
        case .primary: return 0
        case .warming, .fallback:
            if chain.providers.count > 1 { return 1 }
            throw APIError(
                status: 503,
                code: "llm_warming",
                message:
                    "'\(configuration.deployment)' is warming: \(chain.providers[0].name) does not have model \(chain.providers[0].model) yet, and no fallback is configured",
                fields: [("retry_after_s", .double(max(1, configuration.pollIntervalSeconds.rounded(.up))))]
            )
        }
    }

    /// Sends a request and waits for the whole answer.
    func complete(_ request: ChatRequest, logger: Logger) async throws -> ChatResponse {
        try await first(logger: logger, answeredBy: \.provider) { start in try await chain.chat(request, from: start) }
    }

    /// Embeds texts with the deployment's providers, in the chain's order, as ``complete(_:logger:)`` chats.
    func embed(_ request: EmbeddingRequest, logger: Logger) async throws -> EmbeddingResponse {
        try await first(logger: logger, answeredBy: \.provider) { start in try await chain.embed(request, from: start) }
    }

    /// `call` down the chain from the first provider to try: the fallbacks it took recorded and
    /// logged, the answering provider counted, a failure turned into the client's error.
    private func first<Answer>(
        logger: Logger, answeredBy provider: (Answer) -> String,
        _ call: (Int) async throws -> (Answer, [ProviderChain.Attempt])
    ) async throws -> Answer {
        let start = try firstProvider()
        do {
            let (answer, failed) = try await call(start)
            record(failed, answeredBy: provider(answer), logger: logger)
            metrics.record(provider: provider(answer), .success)
            return answer
        } catch {
            throw failure(error, logger: logger)
        }
    }

    /// Sends a request and returns its stream once a provider has produced the first token.
    func stream(_ request: ChatRequest, logger: Logger) async throws -> (
        deltas: ChatDeltaStream, provider: String
    ) {
        let start = try firstProvider()
        do {
            let (deltas, provider, failed) = try await chain.streamChat(request, from: start)
            record(failed, answeredBy: provider, logger: logger)
            return (deltas, provider)
        } catch {
            throw failure(error, logger: logger)
        }
    }

    /// Counts the attempts that failed before `provider` answered, and logs each fallback.
    private func record(_ failed: [ProviderChain.Attempt], answeredBy provider: String, logger: Logger) {
        lastProvider.withLock { $0 = provider }
        count(failed)
        for (index, attempt) in failed.enumerated() {
            let to = index + 1 < failed.count ? failed[index + 1].provider : provider
            metrics.recordFallback(from: attempt.provider, to: to)
            logger.warning(
                "LLM_FALLBACK",
                metadata: ["from": "\(attempt.provider)", "to": "\(to)", "reason": "\(attempt.error)"]
            )
        }
    }

    /// Counts attempts that did not answer: skipped by an open circuit, or failed.
    private func count(_ attempts: [ProviderChain.Attempt]) {
        for attempt in attempts {
            metrics.record(provider: attempt.provider, attempt.error == .circuitOpen ? .circuitOpen : .error)
        }
    }

    /// The client's error for a chain that did not answer.
    private func failure(_ error: any Error, logger: Logger) -> any Error {
        switch error {
        case let error as ProviderChain.Unavailable:
            count(error.attempts)
            logger.error("LLM_UNAVAILABLE", metadata: ["deployment": "\(configuration.deployment)", "attempts": "\(error)"])
            return APIError(
                status: 503,
                code: "llm_unavailable",
                message: "no provider of '\(configuration.deployment)' answered: \(error)",
                fields: [("retry_after_s", .double(1))]
            )
        case let refused as ProviderChain.Refused:
            count(refused.failed)
            metrics.record(provider: refused.provider, .rejected)
            guard case .rejected(let status, let message) = refused.error else { return refused.error }
            return APIError(
                status: status == 404 ? 400 : status, code: "llm_rejected", message: "\(refused.provider) refused the request: \(message)")
        default:
            return error
        }
    }

    /// Tokens of a request's prompt, at most: one per byte of what reaches the model (no
    /// tokenizer makes more) and a few per message for the chat template, so a hold always covers
    /// the real count (``ChatRequest/promptBytes``).
    static func promptTokenBound(_ request: ChatRequest) -> Int {
        request.promptBytes
    }

    /// Credits for `tokens` at the deployment's prices per 1,000, rounded up to the microcredit.
    func cost(_ tokens: TokenUsage) -> Credits {
        let prompt = configuration.inputPricePer1K.multiplied(by: Int64(tokens.promptTokens))
        let completion = configuration.outputPricePer1K.multiplied(by: Int64(tokens.completionTokens))
        // Past Int64 (never for real token counts): as much as a hold can be.
        guard let total = prompt.flatMap({ prompt in completion.flatMap(prompt.adding) }) else {
            return Credits(microcredits: .max / 1000)
        }
        return total.thousandthRoundedUp
    }
}
