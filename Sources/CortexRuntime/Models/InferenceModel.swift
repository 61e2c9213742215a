public import CortexCore
import Dispatch

/// A loaded model that turns validated input tensors into output tensors.
///
/// Implementations are immutable after loading and safe to call concurrently.
public protocol InferenceModel: Sendable {
    /// The model's identity and signature.
    var metadata: ModelMetadata { get }

    /// Runs the model on inputs already validated against ``metadata``, in signature order.
    func infer(_ inputs: [Tensor]) throws -> [Tensor]

    /// How an image becomes this model's input, for image classifiers; `nil` otherwise.
    var image: ImagePreprocessing? { get }

    /// Where requests wait to be merged, for a model with dynamic batching; `nil` otherwise.
    var batcher: DynamicBatcher? { get }

    /// Runs one request's validated inputs the way this model serves them: at once, or through
    /// its dynamic batcher (``BatchedModel``), which may run them merged with others.
    func predict(_ inputs: [Tensor]) async throws -> Prediction

    /// The object holding the model's memory (an ONNX Runtime session), freed when the last
    /// request using the model lets go: an unload waits on it to know the model has drained.
    /// `nil` for a model made of values alone.
    var lifetime: AnyObject? { get }
}

/// One request's outputs, and how they were made.
public struct Prediction: Sendable {
    public var outputs: [Tensor]
    /// Time waiting in a dynamic batcher's queue; `nil` for a model without one.
    public var queuedNanoseconds: UInt64?
    /// The execution that ran only this request; `nil` when a batcher ran it with others (a
    /// batcher reports each of its executions itself, once).
    public var execution: DynamicBatcher.Execution?
    /// The rows of the batch the request ran in; `nil` when it ran alone.
    public var batchRows: Int?

    public init(outputs: [Tensor], queuedNanoseconds: UInt64?, execution: DynamicBatcher.Execution?, batchRows: Int? = nil) {
        self.outputs = outputs
        self.queuedNanoseconds = queuedNanoseconds
        self.execution = execution
        self.batchRows = batchRows
    }
}

extension InferenceModel {
    public var image: ImagePreprocessing? { nil }
    public var batcher: DynamicBatcher? { nil }
    public var lifetime: AnyObject? { nil }

    /// Runs the inputs at once, on the caller's thread, as one execution.
    public func predict(_ inputs: [Tensor]) async throws -> Prediction {
        let start = DispatchTime.now().uptimeNanoseconds
        let outputs = try infer(inputs)
        let execution = DynamicBatcher.Execution(
            requests: 1, rows: inputs.first?.shape.dimensions.first ?? 1, nanoseconds: DispatchTime.now().uptimeNanoseconds &- start)
        return Prediction(outputs: outputs, queuedNanoseconds: nil, execution: execution)
    }
}
