/// The group-commit queue as a value: writes waiting for the next shared transaction, and the
/// one writer that runs them. Its mutating methods say what the caller must do next (wake the
/// writer, run a batch, park, fail a cancelled write); it touches no thread, lock or clock, so
/// every transition is tested directly (`GroupCommitQueueTests`). ``GroupCommitter`` keeps it
/// behind a lock and carries out the actions.
///
/// - `Write`: a queued write (in the committer, its closure and the caller's continuation).
/// - `Wakeup`: how a parked writer is woken (in the committer, a continuation).
struct GroupCommitQueue<Write, Wakeup> {
    /// Most writes in one transaction.
    let maximumBatch: Int
    private var pending: [(id: Int, write: Write)] = []
    /// Where `pending` really starts: taken writes are dropped in bulk, not one by one.
    private var start = 0
    private var parked: Wakeup?
    private var closed = false

    init(maximumBatch: Int) {
        self.maximumBatch = max(maximumBatch, 1)
    }

    /// Writes waiting for a transaction.
    var waiting: Int { pending.count - start }
    /// Whether the writer is parked, waiting for work.
    var isWriterParked: Bool { parked != nil }
    /// Whether ``close()`` was called.
    var isClosed: Bool { closed }

    enum SubmitAction {
        /// Queued; the writer is busy and will take it with a later batch.
        case queued
        /// Queued, and the writer was parked: wake it.
        case wake(Wakeup)
        /// The store is closing: the write is not queued.
        case refused
    }

    /// Queues `write` under `id` (unique per write).
    mutating func submit(id: Int, _ write: Write) -> SubmitAction {
        guard !closed else { return .refused }
        pending.append((id, write))
        guard let parked else { return .queued }
        self.parked = nil
        return .wake(parked)
    }

    enum NextAction {
        /// Run these writes in one transaction, in this order.
        case run([(id: Int, write: Write)])
        /// Nothing to do: park until woken (``park(_:)``).
        case park
        /// Closed and drained: the writer ends.
        case stop
    }

    /// What the writer does next: the oldest writes, up to ``maximumBatch``.
    mutating func next() -> NextAction {
        guard waiting > 0 else { return closed ? .stop : .park }
        let end = min(pending.count, start + maximumBatch)
        let batch = Array(pending[start..<end])
        start = end
        if start == pending.count {
            pending.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 1024 {
            pending.removeFirst(start)
            start = 0
        }
        return .run(batch)
    }

    /// Parks the writer with `wakeup`, unless work arrived (or the queue closed) since it asked:
    /// then it returns `false` and the writer asks again at once.
    mutating func park(_ wakeup: Wakeup) -> Bool {
        guard waiting == 0, !closed else { return false }
        parked = wakeup
        return true
    }

    /// A caller gave up on write `id` (its task was cancelled): the write, if it is still queued
    /// (the caller fails it with a cancellation error), or `nil` when a transaction already has it
    /// (it runs, and the caller gets its result).
    mutating func cancel(id: Int) -> Write? {
        guard let index = pending[start...].firstIndex(where: { $0.id == id }) else { return nil }
        return pending.remove(at: index).write
    }

    /// Stops taking writes; those queued still run. The parked writer, if any, to wake so that it drains and stops.
    mutating func close() -> Wakeup? {
        closed = true
        defer { parked = nil }
        return parked
    }
}

extension GroupCommitQueue: Sendable where Write: Sendable, Wakeup: Sendable {}
