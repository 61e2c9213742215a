import CortexCore
import CortexRuntime
import Testing

@testable import CortexServer

/// Every way a streamed LLM answer can end, and what each is charged, without a server or a clock.
@Suite("LLM stream settlement")
struct LLMStreamSettlementTests {
    struct ProviderDown: Error {}

    static let estimate = TokenUsage(promptTokens: 12, completionTokens: 50)

    @Test("a complete stream with usage: every token sent, the first marked, the usage charged, the end written")
    func completeWithUsage() {
        var settlement = LLMStreamSettlement(estimate: Self.estimate)
        #expect(settlement.received(ChatDelta(text: "one")) == .send(first: true))
        #expect(settlement.received(ChatDelta(text: " two")) == .send(first: false))
        let reported = TokenUsage(promptTokens: 5, completionTokens: 2)
        #expect(settlement.received(ChatDelta(text: "", finishReason: "stop", usage: reported)) == .skip)
        settlement.ended(cancelled: false)
        #expect(settlement.complete && settlement.tokens == reported && settlement.finishReason == "stop")
        #expect(settlement.providerOutcome == .success)
        guard case .end = settlement.ending(billingFailure: nil) else { Issue.record("a whole answer ends normally"); return }
    }

    @Test("a complete stream without usage is charged the estimate held, never zero")
    func completeWithoutUsage() {
        var settlement = LLMStreamSettlement(estimate: Self.estimate)
        _ = settlement.received(ChatDelta(text: "hi"))
        settlement.ended(cancelled: false)
        #expect(settlement.tokens == Self.estimate)
    }

    @Test("a provider failing mid-stream: charged the tokens delivered, a cut, the stream_cut frame")
    func providerCut() {
        var settlement = LLMStreamSettlement(estimate: Self.estimate)
        _ = settlement.received(ChatDelta(text: "a"))
        _ = settlement.received(ChatDelta(text: "b"))
        settlement.failed(ProviderDown())
        #expect(!settlement.reading)
        settlement.ended(cancelled: true)
        #expect(settlement.failure is ProviderDown, "the first failure is kept")
        #expect(settlement.tokens == TokenUsage(promptTokens: 12, completionTokens: 2))
        #expect(settlement.providerOutcome == .cut)
        guard case .cut(_, let delivered) = settlement.ending(billingFailure: nil) else { Issue.record("cut"); return }
        #expect(delivered == 2)
    }

    @Test("the server cutting the task (drain timeout) is a cut, charged what was delivered, at most the estimate")
    func serverCut() {
        var settlement = LLMStreamSettlement(estimate: TokenUsage(promptTokens: 3, completionTokens: 1))
        _ = settlement.received(ChatDelta(text: "a"))
        _ = settlement.received(ChatDelta(text: "b"))
        settlement.ended(cancelled: true)
        #expect(settlement.failure is CancellationError)
        #expect(settlement.tokens == TokenUsage(promptTokens: 3, completionTokens: 1))
        guard case .cut = settlement.ending(billingFailure: nil) else { Issue.record("cut"); return }
    }

    @Test("a client that leaves: nothing more is written, it pays what it was sent, the provider is not blamed")
    func clientLeft() {
        var settlement = LLMStreamSettlement(estimate: Self.estimate)
        _ = settlement.received(ChatDelta(text: "a"))
        settlement.clientLeft()
        #expect(!settlement.reading)
        settlement.ended(cancelled: true)
        #expect(settlement.failure == nil, "leaving is not a cut")
        #expect(settlement.tokens == TokenUsage(promptTokens: 12, completionTokens: 1))
        #expect(settlement.providerOutcome == .success)
        guard case .none = settlement.ending(billingFailure: nil) else { Issue.record("nothing is written"); return }
    }

    @Test("a whole answer that could not be settled ends with the billing error, not the usage")
    func billingFailed() {
        var settlement = LLMStreamSettlement(estimate: Self.estimate)
        _ = settlement.received(ChatDelta(text: "a"))
        settlement.ended(cancelled: false)
        guard case .billingFailed(let error) = settlement.ending(billingFailure: .billingUnavailable) else {
            Issue.record("the billing failure is the last frame")
            return
        }
        #expect(error.code == "billing_unavailable")
    }

    @Test("the opening chunk goes out with the first write only")
    func opening() {
        var settlement = LLMStreamSettlement(estimate: Self.estimate)
        let first = settlement.takeOpening()
        let second = settlement.takeOpening()
        #expect(first && !second)
    }
}

extension LLMStreamSettlementTests {
    @Test("a delta of tool calls alone is sent and counted as delivered; one with only a finish reason is not")
    func toolCallDelta() {
        var settlement = LLMStreamSettlement(estimate: Self.estimate)
        #expect(settlement.received(ChatDelta(text: "", members: #""tool_calls":[]"#)) == .send(first: true))
        #expect(settlement.received(ChatDelta(text: "", finishReason: "tool_calls")) == .skip)
        #expect(settlement.delivered == 1 && settlement.finishReason == "tool_calls")
    }
}
