/// The read deadlines of one HTTP/1.1 connection, as a value that returns what to do.
///
/// A connection is idle (between requests: `IDLE_TIMEOUT_S`), reading a request's head (from its
/// first byte: `REQUEST_HEADER_TIMEOUT_S`), reading its body (from the end of the head to the end
/// of the body: `REQUEST_BODY_TIMEOUT_S`), or waiting for its answer (no deadline: a model or an
/// LLM stream may take as long as it takes). Each deadline covers the whole stage, so a client
/// sending a byte every 100 ms cannot hold a connection open by trickling.
///
/// The machine keeps one deadline; the channel handler keeps one timer and asks ``timerFired(at:)``
/// what to do when it goes off.
struct ConnectionTimeouts<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    /// The three limits.
    struct Limits: Sendable, Equatable {
        var idle: Duration
        var header: Duration
        var body: Duration
    }

    enum Stage: Sendable, Equatable {
        case idle
        case head
        case body
        /// The request was read; its answer is being made or written.
        case waiting
        case closed
    }

    /// What the handler does after an event.
    enum Action: Sendable, Equatable {
        /// Arm (or keep) the timer for this instant.
        case schedule(Instant)
        case none
        /// Close the connection without a word: it was idle.
        case close
        /// Answer 408 and close: a request came too slowly.
        case timeOut(Stage)
        /// Close: a request came too slowly, but an answer to it has begun, so no 408 can be sent.
        case closeMidAnswer(Stage)
    }

    let limits: Limits
    private(set) var stage = Stage.idle
    private(set) var deadline: Instant?
    /// Whether an answer to the current request has begun (or been written whole, early: a 401 or
    /// 413 before the body came). A 408 after it would read as the answer to a next request.
    private(set) var answered = false

    init(limits: Limits) {
        self.limits = limits
    }

    /// The connection opened: it is idle until its first byte.
    mutating func opened(at now: Instant) -> Action {
        enter(.idle, deadline: now.advanced(by: limits.idle))
    }

    /// Bytes arrived. The first byte of a request starts its head's deadline.
    mutating func bytesRead(at now: Instant) -> Action {
        guard stage == .idle else { return .none }
        return enter(.head, deadline: now.advanced(by: limits.header))
    }

    /// A request's head was decoded: its body's deadline starts. (Pipelined bytes may have been
    /// read while the previous answer was written, so the head can come straight from idle.)
    mutating func headRead(at now: Instant) -> Action {
        switch stage {
        case .idle, .head: enter(.body, deadline: now.advanced(by: limits.body))
        case .body, .waiting, .closed: .none
        }
    }

    /// A request's body ended: no read deadline while its answer is made.
    mutating func endRead() -> Action {
        guard stage == .body else { return .none }
        return enter(.waiting, deadline: nil)
    }

    /// An answer's head was written.
    mutating func answerStarted() {
        answered = true
    }

    /// An answer's end was written: the connection is idle again, unless the request is still
    /// being read (an early answer such as a 413 before the whole body came).
    mutating func answerEnded(at now: Instant) -> Action {
        guard stage == .waiting else { return .none }
        answered = false
        return enter(.idle, deadline: now.advanced(by: limits.idle))
    }

    /// The connection closed.
    mutating func closed() {
        stage = .closed
        deadline = nil
    }

    /// The timer went off at `now`: act if the deadline passed, else re-arm for it.
    mutating func timerFired(at now: Instant) -> Action {
        guard let deadline else { return .none }
        guard now >= deadline else { return .schedule(deadline) }
        let expired = stage
        closed()
        switch expired {
        case .idle: return .close
        case .head, .body: return answered ? .closeMidAnswer(expired) : .timeOut(expired)
        case .waiting, .closed: return .none
        }
    }

    private mutating func enter(_ stage: Stage, deadline: Instant?) -> Action {
        self.stage = stage
        self.deadline = deadline
        return deadline.map { .schedule($0) } ?? .none
    }
}
