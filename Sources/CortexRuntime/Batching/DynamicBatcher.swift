public import CortexCore
import Foundation

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
/// One thread per batched model runs the executions, off the event loops: it takes the oldest
/// waiting request and every later one whose inputs have the same types and the same dimensions
/// after the first (the batch dimension), up to ``BatchingOptions/maxBatchSize`` rows, stacks
/// them, runs the model once, and hands each request its own rows. Each answer is exactly the
/// rows the model computes for that request's rows (for models whose rows do not interact).
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

    private final class Pending: @unchecked Sendable {
        let inputs: [Tensor]
        let rows: Int
        let enqueued: UInt64
        let continuation: CheckedContinuation<(outputs: [Tensor], queuedNanoseconds: UInt64), any Error>

        init(
            inputs: [Tensor],
            rows: Int,
            enqueued: UInt64,
            continuation: CheckedContinuation<(outputs: [Tensor], queuedNanoseconds: UInt64), any Error>
        ) {
            self.inputs = inputs
            self.rows = rows
            self.enqueued = enqueued
            self.continuation = continuation
        }
    }

    /// The waiting requests, guarded by `condition`.
    private final class Queue: @unchecked Sendable {
        let condition = NSCondition()
        var pending: [Pending] = []
        var stopped = false
    }

    public let model: any InferenceModel
    public let options: BatchingOptions
    private let onExecution: @Sendable (Execution) -> Void
    private let queue = Queue()

    /// Starts the batching thread for `model`.
    ///
    /// - Parameter onExecution: Called after every execution (for `model_batch_size` and the like).
    public init(model: any InferenceModel, options: BatchingOptions, onExecution: @escaping @Sendable (Execution) -> Void = { _ in }) {
        self.model = model
        self.options = options
        self.onExecution = onExecution
        let thread = Thread { [queue, model, options, onExecution] in
            Self.run(queue: queue, model: model, options: options, onExecution: onExecution)
        }
        thread.name = "cortex-batch-\(model.metadata.name)"
        thread.start()
    }

    deinit {
        stop()
    }

    /// Stops the thread once the queue is empty; later requests fail with 503.
    public func stop() {
        queue.condition.lock()
        queue.stopped = true
        queue.condition.broadcast()
        queue.condition.unlock()
    }

    /// Runs `inputs` (validated, in signature order) as part of a batch.
    ///
    /// - Returns: The outputs for these rows, and how long the request waited to be run.
    /// - Throws: ``APIError`` 503 `queue_full` when ``BatchingOptions/maxQueue`` requests wait
    ///   already; whatever the model throws.
    public func infer(_ inputs: [Tensor]) async throws -> (outputs: [Tensor], queuedNanoseconds: UInt64) {
        let rows = inputs.first?.shape.dimensions.first ?? 1
        return try await withCheckedThrowingContinuation { continuation in
            let pending = Pending(inputs: inputs, rows: rows, enqueued: DispatchTime.now().uptimeNanoseconds, continuation: continuation)
            queue.condition.lock()
            guard !queue.stopped, queue.pending.count < options.maxQueue else {
                let stopped = queue.stopped
                queue.condition.unlock()
                continuation.resume(
                    throwing: APIError(
                        status: 503,
                        code: stopped ? "model_not_ready" : "queue_full",
                        message: stopped
                            ? "model '\(model.metadata.name)' is shutting down"
                            : "model '\(model.metadata.name)' has \(options.maxQueue) requests waiting already; retry shortly",
                        fields: [("retry_after_s", .double(1))]
                    )
                )
                return
            }
            queue.pending.append(pending)
            queue.condition.signal()
            queue.condition.unlock()
        }
    }

    private static func run(queue: Queue, model: any InferenceModel, options: BatchingOptions, onExecution: (Execution) -> Void) {
        while true {
            queue.condition.lock()
            while queue.pending.isEmpty && !queue.stopped { queue.condition.wait() }
            if queue.pending.isEmpty && queue.stopped {
                queue.condition.unlock()
                return
            }
            // Wait for more rows, up to the delay after the oldest request arrived.
            if options.maxQueueDelayMicroseconds > 0 {
                let deadline = queue.pending[0].enqueued + UInt64(options.maxQueueDelayMicroseconds) * 1000
                while !queue.stopped, queue.pending.reduce(0, { $0 + $1.rows }) < options.maxBatchSize {
                    let now = DispatchTime.now().uptimeNanoseconds
                    guard now < deadline else { break }
                    _ = queue.condition.wait(until: Date(timeIntervalSinceNow: Double(deadline - now) / 1e9))
                }
            }
            let batch = take(from: &queue.pending, maxRows: options.maxBatchSize)
            queue.condition.unlock()
            execute(batch, model: model, onExecution: onExecution)
        }
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

    private static func execute(_ batch: [Pending], model: any InferenceModel, onExecution: (Execution) -> Void) {
        let start = DispatchTime.now().uptimeNanoseconds
        let rows = batch.reduce(0) { $0 + $1.rows }
        do {
            let inputs = batch.count == 1 ? batch[0].inputs : stack(batch.map(\.inputs))
            let outputs = try model.infer(inputs)
            let end = DispatchTime.now().uptimeNanoseconds
            onExecution(Execution(requests: batch.count, rows: rows, nanoseconds: end - start))
            guard batch.count > 1 else {
                batch[0].continuation.resume(returning: (outputs, start - batch[0].enqueued))
                return
            }
            var offset = 0
            let split = try batch.map { pending -> [Tensor] in
                defer { offset += pending.rows }
                return try outputs.map { try slice($0, rows: offset..<offset + pending.rows, of: rows) }
            }
            for (pending, outputs) in zip(batch, split) {
                pending.continuation.resume(returning: (outputs, start - pending.enqueued))
            }
        } catch {
            for pending in batch { pending.continuation.resume(throwing: error) }
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
