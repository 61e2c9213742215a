import Testing

@testable import CortexCore

@Suite("GCRA rate limit")
struct GCRATests {
    static let millisecond: Int64 = 1_000_000
    static let second: Int64 = 1_000_000_000

    /// Runs `count` requests at `now` against `tat`, returning how many were allowed and the last decision.
    static func burst(_ limit: GCRA, count: Int, at now: Int64, tat: inout Int64?) -> (allowed: Int, last: GCRA.Decision?) {
        var allowed = 0
        var last: GCRA.Decision?
        for _ in 0..<count {
            let decision = limit.decide(now: now, tat: tat)
            tat = decision.tat
            if decision.allowed { allowed += 1 }
            last = decision
        }
        return (allowed, last)
    }

    @Test("a fresh key gets exactly its burst at once, counting remaining down to 0")
    func burstFromFull() {
        let limit = GCRA(rate: 5, burst: 5)
        var tat: Int64?
        var remaining: [Int] = []
        for _ in 0..<5 {
            let decision = limit.decide(now: 0, tat: tat)
            #expect(decision.allowed)
            tat = decision.tat
            remaining.append(decision.remaining)
        }
        #expect(remaining == [4, 3, 2, 1, 0])
        let refused = limit.decide(now: 0, tat: tat)
        #expect(!refused.allowed)
        #expect(refused.retryAfter == 200 * Self.millisecond)
        #expect(refused.tat == tat, "a refusal does not use up anything")
        #expect(refused.resetAfter == Self.second)
    }

    @Test("20 requests at once with 5/s and burst 5: 5 allowed, 15 refused")
    func tightBurst() {
        var tat: Int64?
        let result = Self.burst(GCRA(rate: 5, burst: 5), count: 20, at: 10 * Self.second, tat: &tat)
        #expect(result.allowed == 5)
        #expect(result.last?.retryAfter == 200 * Self.millisecond)
    }

    @Test("a steady rate at the limit is always allowed; faster is refused by the excess")
    func steadyRate() {
        let limit = GCRA(rate: 10, burst: 1)
        var tat: Int64?
        var allowed = 0
        for step in 0..<100 {
            let decision = limit.decide(now: Int64(step) * 100 * Self.millisecond, tat: tat)
            tat = decision.tat
            if decision.allowed { allowed += 1 }
        }
        #expect(allowed == 100)
        tat = nil
        allowed = 0
        for step in 0..<100 {
            // Twice the rate: every other request fits.
            let decision = limit.decide(now: Int64(step) * 50 * Self.millisecond, tat: tat)
            tat = decision.tat
            if decision.allowed { allowed += 1 }
        }
        #expect(allowed == 50)
    }

    @Test("after a pause the bucket refills, but never above the burst")
    func reset() {
        let limit = GCRA(rate: 5, burst: 5)
        var tat: Int64?
        _ = Self.burst(limit, count: 5, at: 0, tat: &tat)
        // 400 ms later two tokens are back.
        #expect(Self.burst(limit, count: 5, at: 400 * Self.millisecond, tat: &tat).allowed == 2)
        // An hour later: a full burst again, not thousands.
        #expect(Self.burst(limit, count: 50, at: 3600 * Self.second, tat: &tat).allowed == 5)
    }

    @Test("clock edges: a request exactly at the allowed instant passes, a nanosecond before does not; a clock behind the state is safe")
    func clockEdges() {
        let limit = GCRA(rate: 5, burst: 1)
        let first = limit.decide(now: 0, tat: nil)
        #expect(first.allowed && first.tat == 200 * Self.millisecond)
        #expect(!limit.decide(now: 200 * Self.millisecond - 1, tat: first.tat).allowed)
        #expect(limit.decide(now: 200 * Self.millisecond, tat: first.tat).allowed)
        // A replica whose clock lags the stored state refuses instead of granting extra.
        let behind = limit.decide(now: -5 * Self.second, tat: first.tat)
        #expect(!behind.allowed)
        #expect(behind.retryAfter == 5 * Self.second + 200 * Self.millisecond)
    }

    @Test("costs: a request may spend several units; cost 0 only asks; force spends past the budget, which then refuses")
    func costs() {
        // 10 units a second, 20 at once (a token budget).
        let limit = GCRA(rate: 10, burst: 20)
        let twelve = limit.decide(now: 0, tat: nil, cost: 12)
        #expect(twelve.allowed && twelve.tat == 1200 * Self.millisecond && twelve.remaining == 8)
        #expect(!limit.decide(now: 0, tat: twelve.tat, cost: 12).allowed, "12 more do not fit in the 8 left")
        let asked = limit.decide(now: 0, tat: twelve.tat, cost: 0)
        #expect(asked.allowed && asked.tat == twelve.tat, "asking spends nothing")
        // Known only afterwards: 12 more are spent anyway, 4 past the budget.
        let forced = limit.decide(now: 0, tat: twelve.tat, cost: 12, force: true)
        #expect(!forced.allowed && forced.tat == 2400 * Self.millisecond)
        let over = limit.decide(now: 0, tat: forced.tat, cost: 0)
        #expect(!over.allowed && over.retryAfter == 400 * Self.millisecond)
        #expect(limit.decide(now: 400 * Self.millisecond, tat: forced.tat, cost: 0).allowed)
    }

    @Test("odd rates round the interval; tiny and huge rates stay positive")
    func parameters() {
        #expect(GCRA(rate: 3, burst: 1).emissionInterval == 333_333_333)
        #expect(GCRA(rate: 1e12, burst: 1).emissionInterval == 1)
        #expect(GCRA(rate: 0.5, burst: 0).burst == 1)
        #expect(GCRA(rate: 0.5, burst: 1).emissionInterval == 2 * Self.second)
    }
}
