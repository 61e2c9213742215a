import Testing

@testable import CortexServer

/// The connection's read deadlines as a value: every transition, without sockets or sleeps.
@Suite("Connection read deadlines")
struct ConnectionTimeoutsTests {
    typealias Machine = ConnectionTimeouts<ContinuousClock.Instant>
    static let limits = Machine.Limits(idle: .seconds(60), header: .seconds(10), body: .seconds(30))
    let start = ContinuousClock.now

    func at(_ seconds: Double) -> ContinuousClock.Instant { start.advanced(by: .seconds(seconds)) }

    @Test("a request goes idle → head → body → waiting → idle, each stage with its own deadline")
    func lifecycle() {
        var machine = Machine(limits: Self.limits)
        #expect(machine.opened(at: at(0)) == .schedule(at(60)))
        #expect(machine.bytesRead(at: at(5)) == .schedule(at(15)), "the head's deadline runs from its first byte")
        #expect(machine.bytesRead(at: at(6)) == .none, "more bytes of the head move nothing")
        #expect(machine.headRead(at: at(7)) == .schedule(at(37)))
        #expect(machine.bytesRead(at: at(8)) == .none, "body bytes move nothing: the deadline covers the whole body")
        #expect(machine.endRead() == .none)
        #expect(machine.stage == .waiting)
        #expect(machine.deadline == nil, "no read deadline while the answer is made, however long")
        #expect(machine.timerFired(at: at(500)) == .none)
        machine.answerStarted()
        #expect(machine.answerEnded(at: at(600)) == .schedule(at(660)))
        #expect(machine.stage == .idle)
    }

    @Test("a deadline that passes: idle closes quietly; a slow head or body gets a 408")
    func expiry() {
        var idle = Machine(limits: Self.limits)
        _ = idle.opened(at: at(0))
        #expect(idle.timerFired(at: at(59)) == .schedule(at(60)), "early: re-arm for the deadline")
        #expect(idle.timerFired(at: at(60)) == .close)
        #expect(idle.stage == .closed)

        var head = Machine(limits: Self.limits)
        _ = head.opened(at: at(0))
        _ = head.bytesRead(at: at(1))
        #expect(head.timerFired(at: at(11)) == .timeOut(.head))

        var body = Machine(limits: Self.limits)
        _ = body.opened(at: at(0))
        _ = body.bytesRead(at: at(1))
        _ = body.headRead(at: at(1))
        #expect(body.timerFired(at: at(30)) == .schedule(at(31)))
        #expect(body.timerFired(at: at(31)) == .timeOut(.body))
        #expect(body.timerFired(at: at(40)) == .none, "fires once")
    }

    @Test("an answer written before the body came (401, 413): the body's deadline still holds, and ends in a close, not a 408")
    func earlyAnswer() {
        var machine = Machine(limits: Self.limits)
        _ = machine.opened(at: at(0))
        _ = machine.bytesRead(at: at(0))
        _ = machine.headRead(at: at(0))
        machine.answerStarted()
        #expect(machine.answerEnded(at: at(1)) == .none, "still reading the request")
        #expect(machine.stage == .body)
        #expect(machine.timerFired(at: at(30)) == .closeMidAnswer(.body))
    }

    @Test("pipelined bytes read while an answer is written: the next head may come straight from idle")
    func pipelined() {
        var machine = Machine(limits: Self.limits)
        _ = machine.opened(at: at(0))
        _ = machine.bytesRead(at: at(0))
        _ = machine.headRead(at: at(0))
        _ = machine.endRead()
        #expect(machine.bytesRead(at: at(1)) == .none, "the next request's bytes, while waiting")
        machine.answerStarted()
        _ = machine.answerEnded(at: at(2))
        #expect(machine.headRead(at: at(2)) == .schedule(at(32)))
        #expect(machine.answered == false, "a new request has no answer yet")
    }

    @Test("after the connection closed, nothing happens")
    func closed() {
        var machine = Machine(limits: Self.limits)
        _ = machine.opened(at: at(0))
        machine.closed()
        #expect(machine.bytesRead(at: at(1)) == .none)
        #expect(machine.headRead(at: at(1)) == .none)
        #expect(machine.timerFired(at: at(100)) == .none)
    }
}
