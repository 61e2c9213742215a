import Synchronization

/// Which provider answers chats now (the LLM assistant's `llm.path`).
public enum LLMPath: String, Sendable, Hashable {
    /// The primary's model is not there yet (still being pulled); the fallback answers if any.
    case warming
    /// The primary has its model.
    case primary
    /// The poll budget ran out without the primary's model; the fallback answers.
    case fallback
}

/// Polls the primary provider's model list until its model is present (promoting `warming` to
/// `primary` without a restart) or the poll budget (`PRIMARY_POLL_MAX_S`) runs out.
///
/// The path only moves forward: `warming` → `primary`, or `warming` → `fallback` when the budget
/// is spent and a fallback exists (without one it stays `warming`, and readiness says so).
public final class PrimaryWarmup: Sendable {
    private struct State {
        var path = LLMPath.warming
        var modelPresent = false
        var lastError: String?
    }

    public let primary: any LLMProvider
    public let hasFallback: Bool
    public let interval: Duration
    public let budget: Duration
    private let state = Mutex(State())
    private let onChange: @Sendable (LLMPath, String) -> Void

    /// - Parameters:
    ///   - interval: Time between polls (`PRIMARY_POLL_INTERVAL_S`).
    ///   - budget: How long to keep polling (`PRIMARY_POLL_MAX_S`).
    ///   - onChange: Told the new path and why, once per change.
    public init(
        primary: any LLMProvider,
        hasFallback: Bool,
        interval: Duration,
        budget: Duration,
        onChange: @escaping @Sendable (LLMPath, String) -> Void = { _, _ in }
    ) {
        self.primary = primary
        self.hasFallback = hasFallback
        self.interval = interval
        self.budget = budget
        self.onChange = onChange
    }

    /// The current path.
    public var path: LLMPath { state.withLock { $0.path } }
    /// Whether the primary's model was seen in its model list (the LLM assistant's `primary_model_present`).
    public var primaryModelPresent: Bool { state.withLock { $0.modelPresent } }
    /// Why the last poll failed, if it did.
    public var lastError: String? { state.withLock { $0.lastError } }

    /// Whether `listed` holds `model`: the same name, or Ollama's `name:latest` for a bare `name`.
    public static func contains(_ listed: [String], model: String) -> Bool {
        listed.contains { $0 == model || (!model.contains(":") && $0 == model + ":latest") }
    }

    /// Polls once; returns whether the model is present.
    @discardableResult
    public func poll() async -> Bool {
        do {
            let present = Self.contains(try await primary.listModels(), model: primary.model)
            state.withLock { $0.lastError = nil }
            if present { promote() }
            return present
        } catch {
            state.withLock { $0.lastError = "\(error)" }
            return false
        }
    }

    /// Polls every `interval` until the model is present or `budget` is spent; then, without the
    /// model, switches to the fallback if there is one. Returns early when cancelled.
    public func run() async {
        let clock = ContinuousClock()
        let deadline = clock.now + budget
        while !Task.isCancelled {
            if await poll() { return }
            guard clock.now + interval <= deadline else { break }
            try? await Task.sleep(for: interval)
        }
        guard !Task.isCancelled, hasFallback else { return }
        let changed = state.withLock { state -> Bool in
            guard state.path == .warming else { return false }
            state.path = .fallback
            return true
        }
        if changed { onChange(.fallback, "model \(primary.model) not present on \(primary.name) after \(budget)") }
    }

    private func promote() {
        let changed = state.withLock { state -> Bool in
            state.modelPresent = true
            guard state.path != .primary else { return false }
            state.path = .primary
            return true
        }
        if changed { onChange(.primary, "model \(primary.model) present on \(primary.name)") }
    }
}
