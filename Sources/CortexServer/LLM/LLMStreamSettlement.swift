import CortexCore
import CortexRuntime

/// What a streamed LLM answer has done so far, and so what it costs and how it ends: a value
/// that the stream's writer feeds with each event (a delta, a failed write, a provider error, the
/// server cutting the task) and asks what to do next. No I/O, no clock: every path is tested
/// directly (`LLMStreamSettlementTests`).
///
/// The billing rule it carries: a complete stream is charged the provider's usage, else the
/// estimate held (never zero); a stream cut by the provider or the server is charged the tokens
/// delivered (at most the estimate); a client that leaves is charged what it was sent.
struct LLMStreamSettlement {
    /// What was held: the prompt's bound and `max_tokens`.
    let estimate: TokenUsage
    /// Deltas sent to the client (text, tool calls).
    private(set) var delivered = 0
    /// The provider's token counts, when it sent them.
    private(set) var usage: TokenUsage?
    private(set) var finishReason: String?
    /// Why the stream stopped early, if it did (a provider error, or the server cutting the task).
    private(set) var failure: (any Error)?
    /// The client stopped reading: nothing more is written.
    private(set) var clientGone = false
    /// Whether the opening chunk (OpenAI's role chunk) still has to go out, with the next write.
    private(set) var openingPending = true

    init(estimate: TokenUsage) {
        self.estimate = estimate
    }

    /// Whether to read the next delta.
    var reading: Bool { !clientGone && failure == nil }

    enum DeltaAction: Equatable {
        /// Nothing to send (a delta with only a finish reason or usage).
        case skip
        /// Send the delta (its text, tool calls, ...); `first` is the first token (time to first
        /// token is measured then).
        case send(first: Bool)
    }

    mutating func received(_ delta: ChatDelta) -> DeltaAction {
        if let reported = delta.usage { usage = reported }
        if let reason = delta.finishReason { finishReason = reason }
        guard delta.carriesOutput else { return .skip }
        delivered += 1
        return .send(first: delivered == 1)
    }

    /// The opening chunk goes with this write: `true` once, for the first write.
    mutating func takeOpening() -> Bool {
        defer { openingPending = false }
        return openingPending
    }

    /// A write to the client failed: it left.
    mutating func clientLeft() {
        clientGone = true
    }

    /// The provider's stream failed, or the server cut the task (drain timeout).
    mutating func failed(_ error: any Error) {
        if failure == nil { failure = error }
    }

    /// The stream ended without the provider's error: a cut when the task was cancelled meanwhile.
    mutating func ended(cancelled: Bool) {
        if cancelled, reading { failure = CancellationError() }
    }

    /// Whether the whole answer reached the client.
    var complete: Bool { failure == nil && !clientGone }

    /// The tokens to bill (and count against the token limit).
    var tokens: TokenUsage {
        if let usage { return usage }
        if complete { return estimate }
        return TokenUsage(promptTokens: estimate.promptTokens, completionTokens: min(delivered, estimate.completionTokens))
    }

    /// The provider's outcome for `llm_requests_total`: a client that left is not the provider's fault.
    var providerOutcome: LLMMetrics.Outcome { complete || clientGone ? .success : .cut }

    enum Ending {
        /// The client left: write nothing more.
        case none
        /// The provider (or the server) cut the stream after this many tokens.
        case cut(any Error, delivered: Int)
        /// The answer is whole but could not be billed.
        case billingFailed(APIError)
        /// The usage chunk and the end marker.
        case end
    }

    /// The last thing written, once billing ran (`billingFailure` when settling failed).
    func ending(billingFailure: APIError?) -> Ending {
        if clientGone { return .none }
        if let failure { return .cut(failure, delivered: delivered) }
        if let billingFailure { return .billingFailed(billingFailure) }
        return .end
    }
}
