public import CortexCore
public import CortexRuntime
import Dispatch
public import Logging

/// Runs one inference the way every route must: validate first (no inference on invalid
/// input), then predict, recording `inference_outcome_total`, the latency histograms,
/// `model_batch_size` and the `INFERENCE_SUCCESS` / `INFERENCE_FAIL` log events.
public struct InferenceRunner: Sendable {
    let registry: ModelRegistry
    let metrics: ServerMetrics

    /// Creates a runner over a registry.
    public init(registry: ModelRegistry, metrics: ServerMetrics) {
        self.registry = registry
        self.metrics = metrics
    }

    /// The ready model of that name, recording `model_not_ready` outcomes.
    ///
    /// Unknown names are not counted: a label per made-up name would let clients grow the metrics without bound.
    public func model(named name: String, version: String? = nil, logger: Logger) throws(APIError) -> any InferenceModel {
        do {
            return try registry.model(named: name, version: version)
        } catch {
            if error.code == "model_not_ready" {
                metrics.model(name).record(.modelNotReady)
                logger.warning("INFERENCE_FAIL", metadata: ["model": "\(name)", "reason": "model not ready"])
            }
            throw error
        }
    }

    /// Validates `inputs` against the model's signature and runs it.
    ///
    /// - Returns: The model's outputs.
    /// - Throws: ``APIError`` 400 for invalid input (nothing runs), 500 if the backend fails.
    public func infer(_ model: any InferenceModel, inputs: [Tensor], logger: Logger) throws(APIError) -> [Tensor] {
        let metadata = model.metadata
        let handles = metrics.model(metadata.name)
        let start = DispatchTime.now().uptimeNanoseconds
        let ordered: [Tensor]
        do {
            ordered = try metadata.validate(inputs: inputs)
        } catch {
            handles.record(.invalidInput)
            logger.info("INFERENCE_REJECTED", metadata: ["model": "\(metadata.name)", "reason": "\(error.message)"])
            throw error
        }
        let rows = ordered.first?.shape.dimensions.first ?? 1
        let predictStart = DispatchTime.now().uptimeNanoseconds
        let outputs: [Tensor]
        do {
            outputs = try model.infer(ordered)
        } catch {
            handles.predictionErrors.increment()
            handles.record(.error)
            logger.error(
                "INFERENCE_FAIL",
                metadata: ["model": "\(metadata.name)", "version": "\(metadata.version)", "error": "\(error)"]
            )
            if let apiError = error as? APIError { throw apiError }
            throw .inferenceFailed(model: metadata.name)
        }
        let end = DispatchTime.now().uptimeNanoseconds
        handles.predictionLatency.recordNanoseconds(Int64(end &- predictStart))
        handles.latency.recordNanoseconds(Int64(end &- start))
        handles.batchSize.record(rows)
        handles.record(.success)
        logger.info(
            "INFERENCE_SUCCESS",
            metadata: [
                "model": "\(metadata.name)",
                "version": "\(metadata.version)",
                "rows": .stringConvertible(rows),
                "duration_ms": .stringConvertible(Double((end &- start) / 1000) / 1000),
            ]
        )
        return outputs
    }
}
