import CoreMetrics
import Dispatch
import NIOCore
import NIOPosix
import Synchronization

/// Runs writes from concurrent requests in shared transactions: group commit.
///
/// One writer at a time owns the connection. While a transaction commits (and waits for its
/// fsync), new writes queue up; the next transaction takes all of them, up to
/// ``maximumBatch``. Each caller resumes only after the transaction holding its write has
/// committed, so a returned write is durable, yet under load many writes share one commit.
///
/// Writes are ordered by tenant inside a batch, so two replicas sharing PostgreSQL lock rows in
/// the same order and cannot deadlock. If a batch fails, it is rolled back and each write is
/// retried in its own transaction, so one bad write fails alone.
///
/// With a ``BatchStatement``, the batch's ``BatchedLedgerWrite``s run together, set-based
/// (``PostgresLedgerBatch``: one statement, so a batch of nothing else is one round trip in all,
/// its own transaction; ``SQLiteLedgerBatch``: a few statements for the whole batch). Each write
/// keeps its `apply` closure for the one-by-one retry.
final class GroupCommitter: Sendable {
    /// How an engine runs a batch's set-based writes.
    struct BatchStatement: Sendable {
        /// Whether one run is a transaction by itself (a single statement): then a batch of
        /// nothing else runs without `BEGIN` and `COMMIT`.
        var isOwnTransaction: Bool
        /// Runs the writes on a database (or inside a transaction) and returns their results in
        /// order; `durable` says whether the batch must be on disk when it returns.
        var run: @Sendable ([BatchedLedgerWrite], _ durable: Bool, any SQLDatabase) async throws -> [any Sendable]
    }

    private struct Pending: Sendable {
        var tenantID: Int64
        var durable: Bool
        /// The write in the set-based form, if it has one and the database takes it.
        var batched: BatchedLedgerWrite?
        var apply: @Sendable (any SQLDatabase) async throws -> any Sendable
        var continuation: CheckedContinuation<any Sendable, any Error>
        /// The event loop the caller ran on, if any: its task resumes there.
        var loop: (any EventLoop)?

        /// Resumes the caller on its own event loop. Resumed from the writer's thread, the
        /// task would go to whichever loop comes next, and the request it serves would hop
        /// between loops (each hop wakes a thread) for the rest of its life.
        func resume(with result: Result<any Sendable, any Error>) {
            guard let loop else { return continuation.resume(with: result) }
            loop.execute { continuation.resume(with: result) }
        }
    }

    /// The queue, and the writer's lifecycle: whether it runs, and who waits for it to stop.
    private struct State {
        var queue: GroupCommitQueue<Pending, CheckedContinuation<Void, Never>>
        var writerRunning = false
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let database: any SQLDatabase
    private let batchStatement: BatchStatement?
    private let state: Mutex<State>
    /// Each write's id, for its cancellation handler.
    private let nextID = Atomic<Int>(0)
    /// `ledger_batch_size`: writes per shared transaction.
    private let batchSize: Recorder
    /// `ledger_commit_seconds`: how long each shared transaction took, commit included.
    private let commitTime: Timer
    /// `ledger_batch_retries_total`: shared transactions that failed and ran again write by write.
    private let retries: Counter

    /// Where the writer runs; `nil` for the global executor.
    private let executor: (any TaskExecutor)?

    init(
        database: any SQLDatabase,
        executor: (any TaskExecutor)?,
        metrics: any MetricsFactory,
        batchStatement: BatchStatement? = nil,
        maximumBatch: Int = 256
    ) {
        self.database = database
        self.batchStatement = batchStatement
        self.executor = executor
        self.state = Mutex(State(queue: GroupCommitQueue(maximumBatch: maximumBatch)))
        self.batchSize = Recorder(label: "ledger_batch_size", aggregate: true, factory: metrics)
        self.commitTime = Timer(label: "ledger_commit_seconds", factory: metrics)
        self.retries = Counter(label: "ledger_batch_retries_total", factory: metrics)
    }

    /// Runs `apply` inside the next shared transaction and returns its result once committed.
    ///
    /// A caller cancelled while its write is still queued gets `CancellationError` and the write
    /// never runs; once a transaction has the write, it runs and the caller gets its result.
    ///
    /// - Parameter durable: Whether the write must be on disk before this returns. A batch is
    ///   committed durably if any of its writes asks for it.
    ///   - batched: The same write in the set-based form, when it has one; used only with a
    ///     ``BatchStatement``, which must give the result `apply` would.
    func submit<T: Sendable>(
        tenantID: Int64,
        durable: Bool,
        batched: BatchedLedgerWrite? = nil,
        _ apply: @escaping @Sendable (any SQLDatabase) async throws -> T
    ) async throws -> T {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let result = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<any Sendable, any Error>) in
                let write = Pending(
                    tenantID: tenantID, durable: durable, batched: batchStatement == nil ? nil : batched,
                    apply: { try await apply($0) }, continuation: continuation, loop: Self.callersLoop())
                switch state.withLock({ $0.queue.submit(id: id, write) }) {
                case .queued: break
                case .wake(let writer): writer.resume()
                case .refused: continuation.resume(throwing: StoreFailure(reason: "the store is closing"))
                }
            }
        } onCancel: {
            state.withLock { $0.queue.cancel(id: id) }?.resume(with: .failure(CancellationError()))
        }
        guard let typed = result as? T else {
            preconditionFailure("a write's result is always the type its closure returns")
        }
        return typed
    }

    /// The shared group's loops, which live as long as the process: a caller on one of them
    /// resumes there. Callers on any other thread (or a group that may shut down) resume where
    /// Swift's executor puts them.
    private static let sharedLoops = Set(NIOSingletons.posixEventLoopGroup.makeIterator().map { ObjectIdentifier($0) })

    private static func callersLoop() -> (any EventLoop)? {
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop, sharedLoops.contains(ObjectIdentifier(loop)) else { return nil }
        return loop
    }

    /// The writer: runs batches on the writer's executor until ``close()`` (or cancellation), then
    /// drains what is queued and returns. Writes wait for it, so the store runs it for as long as
    /// it is open (``StateStore/run()``).
    func run() async {
        // Closed before the writer started (a store closed at once): nothing can be queued, and
        // the writer's executor may be gone already.
        let starts = state.withLock { state in
            guard !state.queue.isClosed else { return false }
            state.writerRunning = true
            return true
        }
        guard starts else { return }
        await withTaskCancellationHandler {
            await withTaskExecutorPreference(executor) {
                while true {
                    switch state.withLock({ $0.queue.next() }) {
                    case .run(let batch):
                        let ordered = batch.enumerated().sorted {
                            ($0.element.write.tenantID, $0.offset) < ($1.element.write.tenantID, $1.offset)
                        }
                        await run(ordered.map(\.element.write))
                    case .park:
                        await withCheckedContinuation { wakeup in
                            if !state.withLock({ $0.queue.park(wakeup) }) { wakeup.resume() }
                        }
                    case .stop:
                        return
                    }
                }
            }
        } onCancel: {
            state.withLock { $0.queue.close() }?.resume()
        }
        let waiters = state.withLock { state in
            state.writerRunning = false
            defer { state.stopWaiters = [] }
            return state.stopWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Refuses new writes and waits until the writer has run the queued ones and stopped.
    func close() async {
        let parked = state.withLock { $0.queue.close() }
        parked?.resume()
        await withCheckedContinuation { (stopped: CheckedContinuation<Void, Never>) in
            let running = state.withLock { state in
                if state.writerRunning { state.stopWaiters.append(stopped) }
                return state.writerRunning
            }
            if !running { stopped.resume() }
        }
    }

    /// Runs the whole batch in one transaction: the set-based writes in one statement (first),
    /// the rest one by one. Returns the results in the batch's order.
    private func runTogether(_ batch: [Pending]) async throws -> [any Sendable] {
        let durable = batch.contains(where: \.durable)
        let batched = batch.compactMap(\.batched)
        if let batchStatement, batchStatement.isOwnTransaction, batched.count == batch.count {
            return try await batchStatement.run(batched, durable, database)
        }
        return try await database.transaction(durable: durable) { transaction in
            var together: [any Sendable] = []
            if let batchStatement, !batched.isEmpty {
                together = try await batchStatement.run(batched, durable, transaction)
            }
            var next = together.makeIterator()
            var results: [any Sendable] = []
            results.reserveCapacity(batch.count)
            for item in batch {
                if item.batched != nil, let result = next.next() {
                    results.append(result)
                } else {
                    results.append(try await item.apply(transaction))
                }
            }
            return results
        }
    }

    /// Runs a batch. Where the batch statement is a transaction by itself (PostgreSQL), a batch
    /// that also has writes of their own (lease takes and returns, grants, idempotent writes) runs
    /// as two transactions, the statement's first: each then locks tenants' rows in ascending
    /// order, as every other replica's transactions do. In one transaction, the writes of their
    /// own would lock their tenants after the statement had locked the others, out of order, and
    /// two replicas could deadlock (PostgreSQL breaks it after `deadlock_timeout`, 1 s).
    private func run(_ batch: [Pending]) async {
        if let batchStatement, batchStatement.isOwnTransaction, batch.contains(where: { $0.batched != nil }),
            batch.contains(where: { $0.batched == nil })
        {
            await runGroup(batch.filter { $0.batched != nil })
            await runGroup(batch.filter { $0.batched == nil })
            return
        }
        await runGroup(batch)
    }

    private func runGroup(_ batch: [Pending]) async {
        let start = DispatchTime.now().uptimeNanoseconds
        do {
            let results = try await runTogether(batch)
            batchSize.record(batch.count)
            commitTime.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds &- start))
            for (item, result) in zip(batch, results) {
                item.resume(with: .success(result))
            }
        } catch {
            // A lone write that ran as the batch statement runs again through its own statements too.
            guard batch.count > 1 || batch[0].batched != nil else {
                batch[0].resume(with: .failure(error))
                return
            }
            // Find the write that failed: each alone, in its own transaction.
            retries.increment()
            for item in batch {
                do {
                    let result = try await database.transaction(durable: item.durable) { try await item.apply($0) }
                    item.resume(with: .success(result))
                } catch {
                    item.resume(with: .failure(error))
                }
            }
        }
    }
}
