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
        /// Its rows, and how long it waited.
        case done([Tensor], queuedNanoseconds: UInt64)
        /// It is the oldest waiting request and the model is free: run the next batch.
        case lead
    }

    private struct Pending: Sendable {
        let id: UInt64
        let inputs: [Tensor]
        let rows: Int
        let enqueued: UInt64
        let continuation: CheckedContinuation<Turn, any Error>
    }

    private struct State: Sendable {
        var pending: [Pending] = []
        /// Whether a request is running a batch (or about to).
        var running = false
        var nextID: UInt64 = 0
    }

    public let model: any InferenceModel
    public let options: BatchingOptions
    private let onExecution: @Sendable (Execution) -> Void
    private let state = Mutex(State())

    /// A batcher for `model`.
    ///
    /// - Parameter onExecution: Called after every execution (for `model_batch_size` and the like).
    public init(model: any InferenceModel, options: BatchingOptions, onExecution: @escaping @Sendable (Execution) -> Void = { _ in }) {
        self.model = model
        self.options = options
        self.onExecution = onExecution
    }

    /// Requests waiting for their turn (a batch that is running has left the queue).
    public var waitingCount: Int {
        state.withLock { $0.pending.count }
    }

    /// Runs `inputs` (validated, in signature order) as part of a batch.
    ///
    /// - Returns: The outputs for these rows, and how long the request waited to be run.
    /// - Throws: ``APIError`` 503 `queue_full` when ``BatchingOptions/maxQueue`` requests wait
    ///   already; whatever the model throws.
    public func infer(_ inputs: [Tensor]) async throws -> (outputs: [Tensor], queuedNanoseconds: UInt64) {
        let rows = inputs.first?.shape.dimensions.first ?? 1
        let enqueued = DispatchTime.now().uptimeNanoseconds
        var id: UInt64 = 0
        let turn = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Turn, any Error>) in
            let admitted = state.withLock { state -> Bool? in
                guard state.pending.count < options.maxQueue else { return nil }
                state.nextID += 1
                id = state.nextID
                state.pending.append(Pending(id: id, inputs: inputs, rows: rows, enqueued: enqueued, continuation: continuation))
                if state.running { return false }
                state.running = true
                return true
            }
            switch admitted {
            case nil:
                continuation.resume(
                    throwing: APIError(
                        status: 503,
                        code: "queue_full",
                        message: "model '\(model.metadata.name)' has \(options.maxQueue) requests waiting already; retry shortly",
                        fields: [("retry_after_s", .double(1))]
                    )
                )
            case true?: continuation.resume(returning: .lead)
            case false?: break
            }
        }
        switch turn {
        case .done(let outputs, let queued):
            return (outputs, queued)
        case .lead:
            return try await lead(id: id)
        }
    }

    /// Runs one batch that includes request `id` (the oldest waiting), hands the model to the
    /// next waiting request, and returns request `id`'s rows.
    private func lead(id: UInt64) async throws -> (outputs: [Tensor], queuedNanoseconds: UInt64) {
        if options.maxQueueDelayMicroseconds > 0 {
            // Let company arrive, up to the delay after this (the oldest) request arrived.
            let (oldest, rows) = state.withLock { ($0.pending.first?.enqueued ?? 0, $0.pending.reduce(0) { $0 + $1.rows }) }
            let deadline = oldest + UInt64(options.maxQueueDelayMicroseconds) * 1000
            let now = DispatchTime.now().uptimeNanoseconds
            if rows < options.maxBatchSize, now < deadline {
                try? await Task.sleep(for: .nanoseconds(Int64(deadline - now)))
            }
        }
        let batch = state.withLock { state in Self.take(from: &state.pending, maxRows: options.maxBatchSize) }
        let start = DispatchTime.now().uptimeNanoseconds
        var mine: Result<(outputs: [Tensor], queuedNanoseconds: UInt64), any Error> = .failure(CancellationError())
        do {
            let results = try execute(batch)
            for (pending, outputs) in zip(batch, results) {
                let queued = start - pending.enqueued
                if pending.id == id {
                    mine = .success((outputs, queued))
                } else {
                    pending.continuation.resume(returning: .done(outputs, queuedNanoseconds: queued))
                }
            }
        } catch {
            for pending in batch where pending.id != id { pending.continuation.resume(throwing: error) }
            mine = .failure(error)
        }
        // The next batch is led by the oldest request still waiting, on its own thread.
        let next = state.withLock { state -> Pending? in
            guard let first = state.pending.first else {
                state.running = false
                return nil
            }
            return first
        }
        next?.continuation.resume(returning: .lead)
        return try mine.get()
    }

    /// The oldest request and every later one that stacks with it, up to `maxRows` rows.
    private static func take(from pending: inout [Pending], maxRows: Int) -> [Pending] {
        let first = pending.removeFirst()
        var batch = [first]
        var rows = first.rows
        var index = 0
        while index < pending.count, rows < maxRows {
            let candidate = pending[index]
            if rows + candidate.rows <= maxRows, stacks(candidate.inputs, with: first.inputs) {
                batch.append(pending.remove(at: index))
                rows += candidate.rows
            } else {
                index += 1
            }
        }
        return batch
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
    private func execute(_ batch: [Pending]) throws -> [[Tensor]] {
        let start = DispatchTime.now().uptimeNanoseconds
        let rows = batch.reduce(0) { $0 + $1.rows }
        let outputs = try model.infer(batch.count == 1 ? batch[0].inputs : Self.stack(batch.map(\.inputs)))
        onExecution(Execution(requests: batch.count, rows: rows, nanoseconds: DispatchTime.now().uptimeNanoseconds - start))
        guard batch.count > 1 else { return [outputs] }
        var offset = 0
        return try batch.map { pending -> [Tensor] in
            defer { offset += pending.rows }
            return try outputs.map { try Self.slice($0, rows: offset..<offset + pending.rows, of: rows) }
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
