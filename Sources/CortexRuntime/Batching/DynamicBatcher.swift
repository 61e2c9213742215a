public import CortexCore
import Foundation
import Synchronization

/// How a model's requests are merged (`batching:` in its manifest).
public struct BatchingOptions: Sendable, Hashable {
    /// Most rows in one execution; requests larger than this run alone.
    public var maxBatchSize: Int
    /// How long the first request of a batch may wait for more, in microseconds. 0: never wait,
    /// batch only what queued up while the previous execution ran.
    public var maxQueueDelayMicroseconds: Int
    /// Most requests waiting; one more is refused with 503 `queue_full`.
    public var maxQueue: Int

    /// Creates options.
    public init(maxBatchSize: Int, maxQueueDelayMicroseconds: Int = 0, maxQueue: Int = 1024) {
        self.maxBatchSize = maxBatchSize
        self.maxQueueDelayMicroseconds = maxQueueDelayMicroseconds
        self.maxQueue = maxQueue
    }
}

/// Merges concurrent requests to one model into one execution and splits the outputs back.
///
/// No thread of its own: a request that finds the model idle runs at once, on its own thread,
/// and while it runs, later requests queue. When it finishes it hands the queue to the oldest
/// waiting request, which runs the next batch: every waiting request whose inputs have the same
/// types and the same dimensions after the first (the batch dimension), up to
/// ``BatchingOptions/maxBatchSize`` rows, stacked and run once, each request getting its own rows
/// back. A lone request therefore pays nothing for batching, and under load batches form by
/// themselves. Each answer is exactly the rows the model computes for that request's rows (for
/// models whose rows do not interact, which the stacking assumes).
public final class DynamicBatcher: Sendable {
    /// What one execution did, for metrics.
    public struct Execution: Sendable {
        /// Requests merged.
        public var requests: Int
        /// Rows run.
        public var rows: Int
        /// Time in the model.
        public var nanoseconds: UInt64
    }

    /// What a waiting request is told.
    private enum Turn: Sendable {
        /// Its rows, how long it waited, and the rows of the batch it ran in.
        case done([Tensor], queuedNanoseconds: UInt64, batchRows: Int)
        /// It is the oldest waiting request and the model is free: run the next batch.
        case lead
    }

    private struct Pending: Sendable {
        let inputs: [Tensor]
        let continuation: CheckedContinuation<Turn, any Error>
    }

    private struct State: Sendable {
        var queue: BatchQueue<Pending>
        var nextID: UInt64 = 0
    }

    public let model: any InferenceModel
    public let options: BatchingOptions
    private let onExecution: @Sendable (Execution) -> Void
    private let state: Mutex<State>

    /// A batcher for `model`.
    ///
    /// - Parameter onExecution: Called after every execution (for `model_batch_size` and the like).
    public init(model: any InferenceModel, options: BatchingOptions, onExecution: @escaping @Sendable (Execution) -> Void = { _ in }) {
        self.model = model
        self.options = options
        self.onExecution = onExecution
        self.state = Mutex(State(queue: BatchQueue(maxQueue: options.maxQueue)))
    }

    /// Requests waiting for their turn (a batch that is running has left the queue).
    public var waitingCount: Int {
        state.withLock { $0.queue.waiting.count }
    }

    /// Runs `inputs` (validated, in signature order) as part of a batch.
    ///
    /// A request cancelled while it waits leaves the queue with `CancellationError`; one already
    /// in a batch, or leading one, is answered.
    ///
    /// - Returns: The outputs for these rows, how long the request waited to be run, and the rows
    ///   of the batch it ran in (its own and its company's).
    /// - Throws: ``APIError`` 503 `queue_full` when ``BatchingOptions/maxQueue`` requests wait
    ///   already; whatever the model throws.
    public func infer(_ inputs: [Tensor]) async throws -> (outputs: [Tensor], queuedNanoseconds: UInt64, batchRows: Int) {
        let rows = inputs.first?.shape.dimensions.first ?? 1
        let enqueued = DispatchTime.now().uptimeNanoseconds
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        let turn = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Turn, any Error>) in
                let entry = BatchQueue.Entry(
                    id: id, rows: rows, enqueued: enqueued, request: Pending(inputs: inputs, continuation: continuation))
                switch state.withLock({ $0.queue.submit(entry) }) {
                case .lead: continuation.resume(returning: .lead)
                case .wait: break
                case .full:
                    continuation.resume(
                        throwing: APIError(
                            status: 503,
                            code: "queue_full",
                            message: "model '\(model.metadata.name)' has \(options.maxQueue) requests waiting already; retry shortly",
                            fields: [("retry_after_s", .double(1))]
                        )
                    )
                }
            }
        } onCancel: {
            state.withLock { $0.queue.cancel(id: id) }?.continuation.resume(throwing: CancellationError())
        }
        switch turn {
        case .done(let outputs, let queued, let batchRows):
            return (outputs, queued, batchRows)
        case .lead:
            return try await lead(id: id)
        }
    }

    /// Runs one batch that includes request `id` (the designated leader, the oldest waiting),
    /// hands the model to the next waiting request, and returns request `id`'s rows.
    private func lead(id: UInt64) async throws -> (outputs: [Tensor], queuedNanoseconds: UInt64, batchRows: Int) {
        if options.maxQueueDelayMicroseconds > 0 {
            // Let company arrive, up to the delay after this (the oldest) request arrived.
            let (oldest, rows) = state.withLock { ($0.queue.oldestEnqueued ?? 0, $0.queue.waitingRows) }
            let deadline = oldest + UInt64(options.maxQueueDelayMicroseconds) * 1000
            let now = DispatchTime.now().uptimeNanoseconds
            if rows < options.maxBatchSize, now < deadline {
                try? await Task.sleep(for: .nanoseconds(Int64(deadline - now)))
            }
        }
        let batch = state.withLock { state in
            state.queue.take(maxRows: options.maxBatchSize) { Self.stacks($0.inputs, with: $1.inputs) }
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let batchRows = batch.reduce(0) { $0 + $1.rows }
        var mine: Result<(outputs: [Tensor], queuedNanoseconds: UInt64, batchRows: Int), any Error> = .failure(CancellationError())
        do {
            let results = try execute(batch)
            for (entry, outputs) in zip(batch, results) {
                let queued = start - entry.enqueued
                if entry.id == id {
                    mine = .success((outputs, queued, batchRows))
                } else {
                    entry.request.continuation.resume(returning: .done(outputs, queuedNanoseconds: queued, batchRows: batchRows))
                }
            }
        } catch {
            for entry in batch where entry.id != id { entry.request.continuation.resume(throwing: error) }
            mine = .failure(error)
        }
        // The next batch is led by the oldest request still waiting, on its own thread.
        if case .lead(let next) = state.withLock({ $0.queue.finish() }) {
            next.continuation.resume(returning: .lead)
        }
        return try mine.get()
    }

    private static func stacks(_ a: [Tensor], with b: [Tensor]) -> Bool {
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) {
            guard x.datatype == y.datatype, x.shape.dimensions.count == y.shape.dimensions.count,
                x.shape.dimensions.dropFirst() == y.shape.dimensions.dropFirst()
            else { return false }
        }
        return true
    }

    /// Runs the batch once; each request's outputs, in batch order.
    private func execute(_ batch: [BatchQueue<Pending>.Entry]) throws -> [[Tensor]] {
        let start = DispatchTime.now().uptimeNanoseconds
        let rows = batch.reduce(0) { $0 + $1.rows }
        let outputs = try model.infer(batch.count == 1 ? batch[0].request.inputs : Self.stack(batch.map(\.request.inputs)))
        onExecution(Execution(requests: batch.count, rows: rows, nanoseconds: DispatchTime.now().uptimeNanoseconds - start))
        guard batch.count > 1 else { return [outputs] }
        var offset = 0
        return try batch.map { entry -> [Tensor] in
            defer { offset += entry.rows }
            return try outputs.map { try Self.slice($0, rows: offset..<offset + entry.rows, of: rows) }
        }
    }

    /// Stacks each input of every request along the first dimension.
    static func stack(_ requests: [[Tensor]]) -> [Tensor] {
        requests[0].indices.map { index in
            let first = requests[0][index]
            var dimensions = first.shape.dimensions
            dimensions[0] = requests.reduce(0) { $0 + $1[index].shape.dimensions[0] }
            let parts = requests.map { $0[index].data }
            let data: TensorData
            switch first.data {
            case .float: data = .float(parts.flatMap { part -> [Double] in if case .float(let v) = part { return v } else { return [] } })
            case .int: data = .int(parts.flatMap { part -> [Int64] in if case .int(let v) = part { return v } else { return [] } })
            case .bool: data = .bool(parts.flatMap { part -> [Bool] in if case .bool(let v) = part { return v } else { return [] } })
            case .bytes: data = .bytes(parts.flatMap { part -> [String] in if case .bytes(let v) = part { return v } else { return [] } })
            }
            return Tensor(name: first.name, datatype: first.datatype, shape: TensorShape(dimensions), data: data)
        }
    }

    /// Rows `range` of an output whose first dimension is `total`.
    static func slice(_ tensor: Tensor, rows range: Range<Int>, of total: Int) throws -> Tensor {
        guard tensor.shape.dimensions.first == total, total > 0 else {
            throw ModelLoadError(
                path: tensor.name,
                reason: "output '\(tensor.name)' has shape \(tensor.shape), not \(total) rows: this model cannot be batched"
            )
        }
        let width = tensor.data.count / total
        let elements = range.lowerBound * width..<range.upperBound * width
        var dimensions = tensor.shape.dimensions
        dimensions[0] = range.count
        let data: TensorData
        switch tensor.data {
        case .float(let values): data = .float(Array(values[elements]))
        case .int(let values): data = .int(Array(values[elements]))
        case .bool(let values): data = .bool(Array(values[elements]))
        case .bytes(let values): data = .bytes(Array(values[elements]))
        }
        return Tensor(name: tensor.name, datatype: tensor.datatype, shape: TensorShape(dimensions), data: data)
    }
}
