/// The dynamic batcher's queue as a value: requests waiting for the model, and which of them
/// leads (runs) the next batch. Its mutating methods say what the caller must do next; it
/// touches no thread, lock or clock, so every transition is tested directly (`BatchQueueTests`).
/// ``DynamicBatcher`` keeps it behind a lock and carries out the actions.
///
/// There is no thread of the batcher's own: a request that finds the model idle leads at once;
/// when its batch is done, the oldest waiting request is made the next leader. A leader cannot
/// be cancelled out of the queue (the batch it leads carries others' requests); any other waiting
/// request can.
struct BatchQueue<Request> {
    struct Entry {
        var id: UInt64
        var rows: Int
        /// When it was queued, in the caller's clock (nanoseconds).
        var enqueued: UInt64
        var request: Request
    }

    /// Most requests waiting; one more is refused.
    let maxQueue: Int
    private(set) var waiting: [Entry] = []
    /// Whether a batch is running or about to (a leader is designated).
    private(set) var running = false
    /// The request told to lead that has not taken its batch yet.
    private(set) var leader: UInt64?

    init(maxQueue: Int) {
        self.maxQueue = max(maxQueue, 1)
    }

    enum SubmitAction: Equatable {
        /// The model is idle: the request leads the next batch now.
        case lead
        /// Queued behind a running batch: wait to be answered, or told to lead.
        case wait
        /// ``maxQueue`` requests wait already: refuse it.
        case full
    }

    mutating func submit(_ entry: Entry) -> SubmitAction {
        guard waiting.count < maxQueue else { return .full }
        waiting.append(entry)
        guard !running else { return .wait }
        running = true
        leader = entry.id
        return .lead
    }

    /// The oldest waiting request's enqueue time and the rows waiting, for the leader's wait for company.
    var oldestEnqueued: UInt64? { waiting.first?.enqueued }
    var waitingRows: Int { waiting.reduce(0) { $0 + $1.rows } }

    /// The leader takes its batch: itself (the oldest) and every later request that `stacks`
    /// with it, oldest first, up to `maxRows` rows.
    mutating func take(maxRows: Int, stacks: (Request, Request) -> Bool) -> [Entry] {
        precondition(leader != nil && waiting.first?.id == leader, "only the designated leader takes a batch")
        leader = nil
        let first = waiting.removeFirst()
        var batch = [first]
        var rows = first.rows
        var index = 0
        while index < waiting.count, rows < maxRows {
            let candidate = waiting[index]
            if rows + candidate.rows <= maxRows, stacks(candidate.request, first.request) {
                batch.append(waiting.remove(at: index))
                rows += candidate.rows
            } else {
                index += 1
            }
        }
        return batch
    }

    enum FinishAction {
        /// Nobody waits: the model is idle.
        case idle
        /// Tell this request (the oldest waiting) to lead the next batch.
        case lead(Request)
    }

    /// The leader's batch is done (answered, or failed: either way the model is free again).
    mutating func finish() -> FinishAction {
        guard let next = waiting.first else {
            running = false
            return .idle
        }
        leader = next.id
        return .lead(next.request)
    }

    /// Request `id`'s task was cancelled: the request, if it still waits and does not lead (the
    /// caller fails it), or `nil` (it is in a batch, or leads one, and will be answered).
    mutating func cancel(id: UInt64) -> Request? {
        guard id != leader, let index = waiting.firstIndex(where: { $0.id == id }) else { return nil }
        return waiting.remove(at: index).request
    }
}

extension BatchQueue: Sendable where Request: Sendable {}
extension BatchQueue.Entry: Sendable where Request: Sendable {}
