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
    let statistics: InferenceStatistics

    /// Creates a runner over a registry.
    public init(registry: ModelRegistry, metrics: ServerMetrics, statistics: InferenceStatistics = InferenceStatistics()) {
        self.registry = registry
        self.metrics = metrics
        self.statistics = statistics
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
    public func infer(_ model: any InferenceModel, inputs: [Tensor], logger: Logger) async throws(APIError) -> [Tensor] {
        try await predict(validate(model, inputs: inputs, logger: logger))
    }

    /// Runs `parse` (a route reading its request into the model's inputs) and counts a client
    /// error it throws as the model's `invalid_input`, with `INFERENCE_REJECTED`, as ``validate(_:inputs:logger:)``
    /// counts a signature mismatch: every rejected request of a model is counted, whichever step refused it.
    public func rejecting<T>(_ model: any InferenceModel, logger: Logger, _ parse: () async throws -> T) async throws -> T {
        do {
            return try await parse()
        } catch let error as APIError where (400..<500).contains(error.status) {
            metrics.model(model.metadata.name).record(.invalidInput)
            // The code, not the message: a message about the body can quote it, and bodies stay out of logs.
            logger.info("INFERENCE_REJECTED", metadata: ["model": "\(model.metadata.name)", "code": "\(error.code)"])
            throw error
        }
    }

    /// Checks `inputs` against the model's signature: the step before anything is held or run.
    ///
    /// - Returns: The inputs, ordered as the model declares them, ready for ``predict(_:)``.
    /// - Throws: ``APIError`` 400 naming what was expected; `inference_outcome_total{outcome="invalid_input"}`.
    public func validate(_ model: any InferenceModel, inputs: [Tensor], logger: Logger) throws(APIError) -> ValidatedInput {
        let metadata = model.metadata
        let start = DispatchTime.now().uptimeNanoseconds
        do {
            return ValidatedInput(model: model, inputs: try metadata.validate(inputs: inputs), start: start, logger: logger)
        } catch {
            metrics.model(metadata.name).record(.invalidInput)
            logger.info("INFERENCE_REJECTED", metadata: ["model": "\(metadata.name)", "reason": "\(error.message)"])
            throw error
        }
    }

    /// Runs a model on validated inputs: through its dynamic batcher when it has one, else at once.
    ///
    /// - Throws: ``APIError`` 500 if the backend fails (`INFERENCE_FAIL` is logged), 503 when the
    ///   batcher's queue is full.
    public func predict(_ input: ValidatedInput) async throws(APIError) -> [Tensor] {
        let model = input.model
        let metadata = model.metadata
        let handles = metrics.model(metadata.name)
        let logger = input.logger
        let rows = input.inputs.first?.shape.dimensions.first ?? 1
        let predictStart = DispatchTime.now().uptimeNanoseconds
        let outputs: [Tensor]
        var queued: UInt64 = 0
        do {
            // The model decides how it runs (at once, or through its batcher); executions are
            // recorded in one place, whichever ran them.
            let prediction = try await RequestTracing.span(
                "inference", propagates: true,
                attributes: { attributes in
                    attributes["cortex.model"] = metadata.name
                    attributes["cortex.model_version"] = metadata.version
                    attributes["cortex.rows"] = rows
                }
            ) {
                let prediction = try await model.predict(input.inputs)
                RequestTracing.annotate { $0["cortex.batch_size"] = prediction.batchRows ?? rows }
                return prediction
            }
            outputs = prediction.outputs
            if let waited = prediction.queuedNanoseconds {
                queued = waited
                handles.queueLatency.recordNanoseconds(Int64(waited))
            }
            if let execution = prediction.execution {
                Self.recordExecution(execution, model: metadata.name, metrics: metrics, statistics: statistics)
            }
        } catch let error as APIError where error.status == 503 {
            handles.record(.queueFull)
            logger.warning("INFERENCE_FAIL", metadata: ["model": "\(metadata.name)", "reason": "\(error.message)"])
            throw error
        } catch {
            handles.predictionErrors.increment()
            handles.record(.error)
            statistics.recordRequest(
                model: metadata.name, rows: rows, success: false, total: DispatchTime.now().uptimeNanoseconds &- input.start, queued: queued
            )
            logger.error(
                "INFERENCE_FAIL",
                metadata: ["model": "\(metadata.name)", "version": "\(metadata.version)", "error": "\(error)"]
            )
            if let apiError = error as? APIError { throw apiError }
            throw .inferenceFailed(model: metadata.name)
        }
        let end = DispatchTime.now().uptimeNanoseconds
        handles.predictionLatency.recordNanoseconds(Int64(end &- predictStart))
        handles.latency.recordNanoseconds(Int64(end &- input.start))
        handles.record(.success)
        statistics.recordRequest(model: metadata.name, rows: rows, success: true, total: end &- input.start, queued: queued)
        logger.info(
            "INFERENCE_SUCCESS",
            metadata: [
                "model": "\(metadata.name)",
                "version": "\(metadata.version)",
                "rows": .stringConvertible(rows),
                "duration_ms": .stringConvertible(Double((end &- input.start) / 1000) / 1000),
            ]
        )
        return outputs
    }

    /// Records one dynamic batch: `model_batch_size` (rows per execution) and the statistics.
    public static func recordExecution(
        _ execution: DynamicBatcher.Execution,
        model: String,
        metrics: ServerMetrics,
        statistics: InferenceStatistics
    ) {
        metrics.model(model).batchSize.record(execution.rows)
        statistics.recordExecution(model: model, rows: execution.rows, nanoseconds: execution.nanoseconds)
    }
}

/// Inputs that passed a model's signature, in the model's order; only ``InferenceRunner`` makes them.
public struct ValidatedInput: Sendable {
    /// The model they are for.
    public let model: any InferenceModel
    let inputs: [Tensor]
    /// When validation began: `inference_latency_seconds` covers validation, hold and prediction.
    let start: UInt64
    let logger: Logger
}
