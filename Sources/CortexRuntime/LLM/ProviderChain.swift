public import CortexCore
import Dispatch
import Synchronization

/// An ordered chain of providers (primary first, then fallbacks), each behind its own circuit
/// breaker.
///
/// A chat goes to the first provider whose circuit lets it through. A provider's fault
/// (unreachable, timeout, 5xx, 429, a broken answer) counts against its breaker and moves on to
/// the next; the client's own 4xx (``ProviderError/rejected(status:message:)``) is returned at
/// once, without trying others.
public final class ProviderChain: Sendable {
    /// What happened on the way to an answer.
    public struct Attempt: Sendable, Hashable {
        public var provider: String
        public var error: ProviderError

        public init(provider: String, error: ProviderError) {
            self.provider = provider
            self.error = error
        }
    }

    /// A provider refused the request itself (its 4xx): the client's fault, so no other provider
    /// is tried. Names the provider, and the attempts that failed before it.
    public struct Refused: Error, Sendable, Hashable {
        public var provider: String
        public var error: ProviderError
        public var failed: [Attempt]

        public init(provider: String, error: ProviderError, failed: [Attempt]) {
            self.provider = provider
            self.error = error
            self.failed = failed
        }
    }

    /// A chat nobody answered: every attempt and why it failed.
    public struct Unavailable: Error, Sendable, CustomStringConvertible {
        public var attempts: [Attempt]

        public var description: String {
            attempts.map { "\($0.provider) \($0.error)" }.joined(separator: "; ")
        }
    }

    /// The providers, primary first.
    public let providers: [any LLMProvider]
    private let breakers: Mutex<[CircuitBreaker]>
    private let now: @Sendable () -> Int64
    private let onTransition: @Sendable (String, CircuitBreaker.Transition) -> Void

    /// A chain over `providers`, a breaker per provider made from `breaker`.
    ///
    /// - Parameters:
    ///   - now: Nanoseconds on a monotonic clock (tests pass their own).
    ///   - onTransition: Told when a provider's circuit opens, half-opens or closes.
    public init(
        providers: [any LLMProvider],
        breaker: CircuitBreaker = CircuitBreaker(),
        now: (@Sendable () -> Int64)? = nil,
        onTransition: @escaping @Sendable (String, CircuitBreaker.Transition) -> Void = { _, _ in }
    ) {
        self.providers = providers
        self.breakers = Mutex(Array(repeating: breaker, count: providers.count))
        self.now = now ?? { Int64(DispatchTime.now().uptimeNanoseconds) }
        self.onTransition = onTransition
    }

    /// Each provider's breaker state, primary first.
    public var states: [CircuitBreaker.State] {
        breakers.withLock { $0.map(\.state) }
    }

    /// Sends `request` down the chain, from the provider at `start` on (`1` skips a primary that is
    /// still warming).
    ///
    /// - Returns: The answer and the providers that failed before it (empty when the primary answered).
    /// - Throws: ``Refused`` when a provider refused the request
    ///   itself; ``Unavailable`` when no provider answered.
    public func chat(_ request: ChatRequest, from start: Int = 0) async throws -> (response: ChatResponse, failed: [Attempt]) {
        let (response, _, failed) = try await first(from: start) { provider throws(ProviderError) in try await provider.chat(request) }
        return (response, failed)
    }

    /// Streams `request` from the first provider that starts answering: a provider that fails or
    /// stays silent before its first delta is replaced by the next; after it, the stream is that
    /// provider's, and a cut ends it with the provider's error.
    ///
    /// - Returns: The deltas, the provider streaming them, and the providers that failed before.
    public func streamChat(_ request: ChatRequest, from start: Int = 0) async throws -> (
        deltas: ChatDeltaStream, provider: String, failed: [Attempt]
    ) {
        try await first(from: start) { provider throws(ProviderError) in try await provider.streamChat(request) }
    }

    /// `call` on each provider in turn until one succeeds.
    func first<Result>(
        from start: Int,
        _ call: (any LLMProvider) async throws(ProviderError) -> Result
    ) async throws -> (Result, String, [Attempt]) {
        var attempts: [Attempt] = []
        for (index, provider) in providers.enumerated() where index >= start {
            let (allowed, transition) = breakers.withLock { $0[index].allow(now: now()) }
            if let transition { onTransition(provider.name, transition) }
            guard allowed else {
                attempts.append(Attempt(provider: provider.name, error: .circuitOpen))
                continue
            }
            do {
                let result = try await call(provider)
                if let transition = breakers.withLock({ $0[index].recordSuccess() }) { onTransition(provider.name, transition) }
                return (result, provider.name, attempts)
            } catch {
                guard error.fallsBack else {
                    // The request's fault: the provider is fine.
                    if let transition = breakers.withLock({ $0[index].recordSuccess() }) { onTransition(provider.name, transition) }
                    throw Refused(provider: provider.name, error: error, failed: attempts)
                }
                let instant = now()
                if let transition = breakers.withLock({ $0[index].recordFailure(now: instant) }) {
                    onTransition(provider.name, transition)
                }
                attempts.append(Attempt(provider: provider.name, error: error))
            }
        }
        throw Unavailable(attempts: attempts)
    }
}
