public import CortexCore

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
}

extension InferenceModel {
    public var image: ImagePreprocessing? { nil }
    public var batcher: DynamicBatcher? { nil }
}
