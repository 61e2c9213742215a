import CortexCore
import CortexStore
import Foundation
import Synchronization
import Testing

@testable import CortexRuntime

/// The dynamic batcher without ONNX Runtime: a model that reports how it was called.
///
/// The first request of each test is held inside the model, which blocks its thread: it runs on
/// a thread of its own (CortexStore's `ThreadExecutor`), never on the concurrency pool the other
/// requests need.
@Suite("Dynamic batcher")
struct DynamicBatcherTests {
    /// Doubles every element; records each call's row count; the first call can be held at a gate.
    final class RecordingModel: InferenceModel, @unchecked Sendable {
        let metadata = ModelMetadata(
            name: "double", version: "1", platform: "test",
            inputs: [TensorSpec(name: "x", datatype: .fp32, shape: TensorShape([-1, -1]))],
            outputs: [TensorSpec(name: "y", datatype: .fp32, shape: TensorShape([-1, -1]))])
        let calls = Mutex<[Int]>([])
        private let condition = NSCondition()
        private var held: Bool
        private(set) var waiting = false

        init(holdFirstCall: Bool) {
            held = holdFirstCall
        }

        func release() {
            condition.lock()
            held = false
            condition.broadcast()
            condition.unlock()
        }

        /// Whether a call is waiting at the gate.
        var isWaiting: Bool {
            condition.lock()
            defer { condition.unlock() }
            return waiting
        }

        func infer(_ inputs: [Tensor]) throws -> [Tensor] {
            condition.lock()
            waiting = true
            while held { condition.wait() }
            waiting = false
            condition.unlock()
            let input = inputs[0]
            calls.withLock { $0.append(input.shape.dimensions[0]) }
            guard case .float(let values) = input.data else { return [] }
            return [Tensor(name: "y", datatype: .fp32, shape: input.shape, data: .float(values.map { $0 * 2 }))]
        }
    }

    static func rows(_ count: Int, width: Int = 2, start: Double) -> Tensor {
        Tensor(
            name: "x", datatype: .fp32, shape: TensorShape([count, width]),
            data: .float((0..<count * width).map { start + Double($0) }))
    }

    static func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !condition(), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(1)) }
    }

    @Test("a model predicts the way it serves: at once as its own execution, or through its batcher, which reports executions itself")
    func predict() async throws {
        let plain = RecordingModel(holdFirstCall: false)
        let alone = try await plain.predict([Self.rows(3, start: 1)])
        #expect(alone.queuedNanoseconds == nil)
        #expect(alone.execution?.rows == 3 && alone.execution?.requests == 1)
        #expect(alone.outputs.first?.data == .float([2, 4, 6, 8, 10, 12]))

        let executions = Mutex<[Int]>([])
        let batched = try BatchedModel(
            base: RecordingModel(holdFirstCall: false), options: BatchingOptions(maxBatchSize: 8), path: "memory",
            onExecution: { execution in executions.withLock { $0.append(execution.rows) } })
        let queued = try await batched.predict([Self.rows(2, start: 1)])
        #expect(queued.queuedNanoseconds != nil, "it went through the queue")
        #expect(queued.execution == nil, "the batcher reported the execution, not the request")
        #expect(executions.withLock { $0 } == [2])
        #expect(queued.outputs.first?.data == .float([2, 4, 6, 8]))
    }

    @Test("requests waiting while a batch runs are merged into one call, and each gets its own rows back")
    func merges() async throws {
        let model = RecordingModel(holdFirstCall: true)
        let batcher = DynamicBatcher(model: model, options: BatchingOptions(maxBatchSize: 64))
        // The first request runs at once and is held; the next five queue behind it.
        let first = Task(executorPreference: ThreadExecutor(name: "held-model")) { try await batcher.infer([Self.rows(1, start: 0)]) }
        try await Self.waitUntil { model.isWaiting }
        var waiting: [Task<(outputs: [Tensor], queuedNanoseconds: UInt64, batchRows: Int), any Error>] = []
        for index in 1...5 {
            waiting.append(Task { try await batcher.infer([Self.rows(index, start: Double(index * 100))]) })
        }
        try await Self.waitUntil { batcher.waitingCount == 5 }
        model.release()
        #expect(try await first.value.batchRows == 1, "it ran alone")
        for (offset, task) in waiting.enumerated() {
            let index = offset + 1
            let (outputs, _, batchRows) = try await task.value
            #expect(batchRows == 15, "each knows the batch it ran in")
            #expect(outputs[0].shape == TensorShape([index, 2]))
            #expect(outputs[0].data == .float((0..<index * 2).map { (Double(index * 100) + Double($0)) * 2 }))
        }
        #expect(model.calls.withLock { $0 } == [1, 15], "one call for the first, one for the five waiting (1+2+3+4+5 rows)")
    }

    @Test("inputs of different trailing shapes are not stacked; max_batch_size caps the rows")
    func shapesAndCap() async throws {
        let model = RecordingModel(holdFirstCall: true)
        let batcher = DynamicBatcher(model: model, options: BatchingOptions(maxBatchSize: 4))
        let first = Task(executorPreference: ThreadExecutor(name: "held-model")) { try await batcher.infer([Self.rows(1, start: 0)]) }
        try await Self.waitUntil { model.isWaiting }
        // Queued one after another: tasks started together may reach the queue in any order.
        var tasks: [Task<(outputs: [Tensor], queuedNanoseconds: UInt64, batchRows: Int), any Error>] = []
        for (count, input) in [Self.rows(3, start: 10), Self.rows(1, width: 3, start: 20), Self.rows(2, start: 30)].enumerated() {
            tasks.append(Task { try await batcher.infer([input]) })
            try await Self.waitUntil { batcher.waitingCount == count + 1 }
        }
        model.release()
        _ = try await first.value
        for task in tasks { _ = try await task.value }
        // Rows 3 (width 2) lead; the width-3 request cannot join; 3 + 2 exceeds 4, so each runs alone.
        #expect(model.calls.withLock { $0 } == [1, 3, 1, 2])
    }

    @Test("a full queue refuses with 503 queue_full and retry_after_s")
    func queueFull() async throws {
        let model = RecordingModel(holdFirstCall: true)
        let batcher = DynamicBatcher(model: model, options: BatchingOptions(maxBatchSize: 8, maxQueue: 2))
        let first = Task(executorPreference: ThreadExecutor(name: "held-model")) { try await batcher.infer([Self.rows(1, start: 0)]) }
        try await Self.waitUntil { model.isWaiting }
        let queued = [
            Task { try await batcher.infer([Self.rows(1, start: 1)]) }, Task { try await batcher.infer([Self.rows(1, start: 2)]) },
        ]
        try await Self.waitUntil { batcher.waitingCount == 2 }
        await #expect {
            try await batcher.infer([Self.rows(1, start: 3)])
        } throws: { error in
            guard let error = error as? APIError else { return false }
            return error.status == 503 && error.code == "queue_full" && error.message.contains("2 requests waiting")
        }
        model.release()
        _ = try await first.value
        for task in queued { _ = try await task.value }
        #expect(model.calls.withLock { $0 } == [1, 2])
    }
}
