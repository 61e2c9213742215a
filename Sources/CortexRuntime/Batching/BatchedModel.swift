public import CortexCore

/// A model whose requests go through a ``DynamicBatcher``.
///
/// `infer` (used by warm-up) runs the model directly; requests (`predict`) go through the queue.
public struct BatchedModel: InferenceModel {
    /// The model itself.
    public let base: any InferenceModel
    /// Where requests wait to be merged.
    public let queue: DynamicBatcher
    public var batcher: DynamicBatcher? { queue }
    /// The batcher, which holds the base model (and its session) as long as it lives.
    public var lifetime: AnyObject? { queue }

    public var metadata: ModelMetadata { base.metadata }
    public var image: ImagePreprocessing? { base.image }

    /// Wraps `base`; every input and output must have a dynamic first dimension.
    ///
    /// - Throws: ``ModelLoadError`` naming the tensor whose first dimension is fixed.
    public init(
        base: any InferenceModel,
        options: BatchingOptions,
        path: String,
        onExecution: @escaping @Sendable (DynamicBatcher.Execution) -> Void
    ) throws {
        for spec in base.metadata.inputs + base.metadata.outputs where spec.shape.dimensions.first != -1 {
            throw ModelLoadError(
                path: path,
                field: "batching",
                reason:
                    "tensor '\(spec.name)' has shape \(spec.shape); batching needs every input and output to start with a dynamic (-1) batch dimension"
            )
        }
        self.base = base
        self.queue = DynamicBatcher(model: base, options: options, onExecution: onExecution)
    }

    public func infer(_ inputs: [Tensor]) throws -> [Tensor] {
        try base.infer(inputs)
    }

    /// Through the queue: merged with whatever waits beside it (the batcher reports each execution).
    public func predict(_ inputs: [Tensor]) async throws -> Prediction {
        let (outputs, queued, batchRows) = try await queue.infer(inputs)
        return Prediction(outputs: outputs, queuedNanoseconds: queued, execution: nil, batchRows: batchRows)
    }
}
