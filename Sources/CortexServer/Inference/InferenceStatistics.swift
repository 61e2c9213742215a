import Foundation
import Synchronization

/// Per-model counts and times behind `GET /v2/models/{model}/stats` (Triton's statistics extension).
public final class InferenceStatistics: Sendable {
    /// A count and the nanoseconds spent.
    public struct Duration: Sendable, Equatable {
        public var count = 0
        public var nanoseconds: UInt64 = 0

        /// Creates a figure.
        public init(count: Int = 0, nanoseconds: UInt64 = 0) {
            self.count = count
            self.nanoseconds = nanoseconds
        }

        mutating func add(_ nanoseconds: UInt64) {
            count += 1
            self.nanoseconds &+= nanoseconds
        }
    }

    /// One model's figures.
    public struct Model: Sendable, Equatable {
        /// Milliseconds since the epoch of the last inference, 0 before the first.
        public var lastInference: UInt64 = 0
        /// Rows inferred (a batch of 8 counts 8).
        public var inferenceCount = 0
        /// Model executions (a dynamic batch of 8 requests counts 1).
        public var executionCount = 0
        /// Successful requests, from validation to the answer's tensors.
        public var success = Duration()
        /// Requests that failed in the backend.
        public var fail = Duration()
        /// Time waiting in the dynamic batcher's queue.
        public var queue = Duration()
        /// Time in the backend.
        public var computeInfer = Duration()
        /// Executions by batch size (rows), with the backend time.
        public var batches: [Int: Duration] = [:]
    }

    private let models = Mutex<[String: Model]>([:])

    /// Creates empty statistics.
    public init() {}

    /// One model's figures so far.
    public func snapshot(of model: String) -> Model {
        models.withLock { $0[model] ?? Model() }
    }

    /// Records one request answered after `total` ns, of which `queued` ns waiting to be batched.
    func recordRequest(model: String, rows: Int, success: Bool, total: UInt64, queued: UInt64 = 0) {
        let wallClock = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        // Mutated in place: a copy taken out and written back would copy `batches` every time.
        models.withLock { models in
            if success {
                models[model, default: Model()].success.add(total)
                models[model, default: Model()].inferenceCount += rows
                models[model, default: Model()].lastInference = wallClock
            } else {
                models[model, default: Model()].fail.add(total)
            }
            if queued > 0 { models[model, default: Model()].queue.add(queued) }
        }
    }

    /// Records one backend execution of `rows` rows taking `nanoseconds`.
    func recordExecution(model: String, rows: Int, nanoseconds: UInt64) {
        models.withLock { models in
            models[model, default: Model()].executionCount += 1
            models[model, default: Model()].computeInfer.add(nanoseconds)
            models[model, default: Model()].batches[rows, default: Duration()].add(nanoseconds)
        }
    }
}
