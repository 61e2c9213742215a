import CortexCore
import Testing

@Suite("Circuit breaker: closed, open for a cooldown, half-open probe")
struct CircuitBreakerTests {
    static let second: Int64 = 1_000_000_000

    @Test("consecutive failures up to the threshold open it; a success in between resets the count")
    func opens() {
        var breaker = CircuitBreaker(failureThreshold: 3, cooldown: .seconds(10))
        #expect(breaker.recordFailure(now: 0) == nil)
        #expect(breaker.recordFailure(now: 0) == nil)
        #expect(breaker.recordSuccess() == nil)
        #expect(breaker.state == .closed(failures: 0))
        #expect(breaker.recordFailure(now: 1) == nil)
        #expect(breaker.recordFailure(now: 2) == nil)
        #expect(breaker.recordFailure(now: 3) == .opened)
        #expect(breaker.state == .open(until: 3 + 10 * Self.second))
        #expect(breaker.isOpen(now: 4))
        #expect(breaker.allow(now: 4).allowed == false)
        #expect(breaker.allow(now: 3 + 10 * Self.second - 1).allowed == false)
    }

    @Test("after the cooldown exactly one probe goes through; its success closes the circuit")
    func probeSucceeds() {
        var breaker = CircuitBreaker(failureThreshold: 1, cooldown: .seconds(5))
        #expect(breaker.recordFailure(now: 0) == .opened)
        let probe = breaker.allow(now: 5 * Self.second)
        #expect(probe.allowed && probe.transition == .halfOpened)
        #expect(breaker.state == .halfOpen(probing: true))
        #expect(breaker.allow(now: 5 * Self.second).allowed == false, "one probe at a time")
        #expect(breaker.recordSuccess() == .closed)
        #expect(breaker.state == .closed(failures: 0))
        #expect(breaker.allow(now: 6 * Self.second) == (true, nil))
    }

    @Test("a failed probe reopens it for another full cooldown")
    func probeFails() {
        var breaker = CircuitBreaker(failureThreshold: 2, cooldown: .milliseconds(1500))
        _ = breaker.recordFailure(now: 0)
        #expect(breaker.recordFailure(now: 0) == .opened)
        #expect(breaker.allow(now: 2 * Self.second).allowed)
        #expect(breaker.recordFailure(now: 2 * Self.second) == .opened)
        #expect(breaker.state == .open(until: 2 * Self.second + 1_500_000_000))
        #expect(!breaker.allow(now: 3 * Self.second).allowed)
        #expect(breaker.allow(now: 4 * Self.second).allowed)
    }

    @Test("late failures of calls started before it opened do not extend the cooldown; edge settings")
    func edges() {
        var breaker = CircuitBreaker(failureThreshold: 1, cooldown: .seconds(1))
        #expect(breaker.recordFailure(now: 10) == .opened)
        #expect(breaker.recordFailure(now: 500_000_000) == nil)
        #expect(breaker.state == .open(until: 10 + Self.second))
        let zero = CircuitBreaker(failureThreshold: 0, cooldown: .zero)
        #expect(zero.failureThreshold == 1)
        var immediate = zero
        #expect(immediate.recordFailure(now: 7) == .opened)
        #expect(immediate.allow(now: 7).allowed, "a zero cooldown probes at once")
        #expect(CircuitBreaker.State.halfOpen(probing: false).name == "half_open")
    }
}
