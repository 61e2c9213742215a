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
final class GroupCommitter: Sendable {
    private struct Pending: Sendable {
        var tenantID: Int64
        var durable: Bool
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

    private struct State {
        var pending: [Pending] = []
        var running = false
    }

    /// Most writes in one transaction.
    let maximumBatch: Int
    private let database: any SQLDatabase
    private let state = Mutex(State())
    /// `ledger_batch_size`: writes per shared transaction.
    private let batchSize: Recorder
    /// `ledger_commit_seconds`: how long each shared transaction took, commit included.
    private let commitTime: Timer

    /// Where the writer's task runs; `nil` for the global executor.
    private let executor: (any TaskExecutor)?

    init(database: any SQLDatabase, executor: (any TaskExecutor)?, metrics: any MetricsFactory, maximumBatch: Int = 256) {
        self.database = database
        self.executor = executor
        self.maximumBatch = max(maximumBatch, 1)
        self.batchSize = Recorder(label: "ledger_batch_size", aggregate: true, factory: metrics)
        self.commitTime = Timer(label: "ledger_commit_seconds", factory: metrics)
    }

    /// Runs `apply` inside the next shared transaction and returns its result once committed.
    ///
    /// - Parameter durable: Whether the write must be on disk before this returns. A batch is
    ///   committed durably if any of its writes asks for it.
    func submit<T: Sendable>(
        tenantID: Int64,
        durable: Bool,
        _ apply: @escaping @Sendable (any SQLDatabase) async throws -> T
    ) async throws -> T {
        let result = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<any Sendable, any Error>) in
            let start = state.withLock { state in
                state.pending.append(
                    Pending(
                        tenantID: tenantID, durable: durable, apply: { try await apply($0) }, continuation: continuation,
                        loop: Self.callersLoop())
                )
                defer { state.running = true }
                return !state.running
            }
            if start {
                Task(executorPreference: executor) { await self.drain() }
            }
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

    private func drain() async {
        while true {
            let batch = state.withLock { state -> [Pending] in
                guard !state.pending.isEmpty else {
                    state.running = false
                    return []
                }
                let count = min(state.pending.count, maximumBatch)
                defer { state.pending.removeFirst(count) }
                return Array(state.pending.prefix(count))
            }
            if batch.isEmpty { return }
            await run(batch.enumerated().sorted { ($0.element.tenantID, $0.offset) < ($1.element.tenantID, $1.offset) }.map(\.element))
        }
    }

    private func run(_ batch: [Pending]) async {
        let start = DispatchTime.now().uptimeNanoseconds
        do {
            let results = try await database.transaction(durable: batch.contains(where: \.durable)) { transaction in
                var results: [any Sendable] = []
                results.reserveCapacity(batch.count)
                for item in batch {
                    results.append(try await item.apply(transaction))
                }
                return results
            }
            batchSize.record(batch.count)
            commitTime.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds &- start))
            for (item, result) in zip(batch, results) {
                item.resume(with: .success(result))
            }
        } catch {
            guard batch.count > 1 else {
                batch[0].resume(with: .failure(error))
                return
            }
            // Find the write that failed: each alone, in its own transaction.
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
