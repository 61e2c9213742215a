import CortexCore
import CortexRuntime
import Hummingbird

/// Triton's model configuration and statistics extensions, which `tritonclient` reads:
/// `GET /v2/models/{model}/config` and `GET /v2/models[/{model}]/stats`.
extension InferenceProtocolController {
    func config(_ context: Context) throws -> Response {
        let (name, version) = try names(context)
        let model = try registry.model(named: version == nil ? describedModel(name) : name, version: version)
        let metadata = model.metadata
        let batching = model.batcher?.options
        // As Triton: with batching, `dims` leave out the batch dimension.
        let maxBatchSize = batching?.maxBatchSize ?? 0
        var json = JSONWriter(capacity: 512)
        json.beginObject()
        json.member("name", metadata.name)
        json.member("platform", metadata.platform)
        json.member("backend", metadata.platform == "onnxruntime_onnx" ? "onnxruntime" : "cortex")
        json.member("max_batch_size", maxBatchSize)
        for (key, specs) in [("input", metadata.inputs), ("output", metadata.outputs)] {
            json.key(key)
            json.beginArray()
            for spec in specs {
                json.beginObject()
                json.member("name", spec.name)
                json.member("data_type", "TYPE_" + (spec.datatype == .bytes ? "STRING" : spec.datatype.rawValue))
                json.key("dims")
                json.beginArray()
                for dimension in spec.shape.dimensions.dropFirst(maxBatchSize > 0 ? 1 : 0) { json.number(dimension) }
                json.endArray()
                json.endObject()
            }
            json.endArray()
        }
        if let batching {
            json.key("dynamic_batching")
            json.beginObject()
            json.member("max_queue_delay_microseconds", batching.maxQueueDelayMicroseconds)
            json.key("default_queue_policy")
            json.beginObject()
            json.member("max_queue_size", batching.maxQueue)
            json.endObject()
            json.endObject()
        }
        json.key("instance_group")
        json.beginArray()
        json.beginObject()
        json.member("count", 1)
        json.member("kind", "KIND_CPU")
        json.endObject()
        json.endArray()
        json.key("parameters")
        json.beginObject()
        for key in metadata.properties.keys.sorted() {
            json.key(key)
            json.beginObject()
            json.member("string_value", metadata.properties[key] ?? "")
            json.endObject()
        }
        json.endObject()
        json.endObject()
        return Response.json(.ok, json.text)
    }

    func stats(_ context: Context) throws -> Response {
        let entries: [(name: String, version: String)]
        if let name = context.parameters.get("model") {
            let model = try registry.model(named: name, version: context.parameters.get("version"))
            entries = [(model.metadata.name, model.metadata.version)]
        } else {
            entries = registry.entries.compactMap { entry in
                guard case .ready(let model) = entry.state else { return nil }
                return (model.metadata.name, model.metadata.version)
            }
        }
        var json = JSONWriter(capacity: 512)
        json.beginObject()
        json.key("model_stats")
        json.beginArray()
        for (name, version) in entries {
            let figures = pipeline.runner.statistics.snapshot(of: name)
            json.beginObject()
            json.member("name", name)
            json.member("version", version)
            json.key("last_inference")
            json.raw(String(figures.lastInference))
            json.member("inference_count", figures.inferenceCount)
            json.member("execution_count", figures.executionCount)
            json.key("inference_stats")
            json.beginObject()
            let none = InferenceStatistics.Duration()
            for (key, duration) in [
                ("success", figures.success), ("fail", figures.fail), ("queue", figures.queue), ("compute_input", none),
                ("compute_infer", figures.computeInfer), ("compute_output", none), ("cache_hit", none), ("cache_miss", none),
            ] {
                Self.write(duration, as: key, to: &json)
            }
            json.endObject()
            json.key("batch_stats")
            json.beginArray()
            for size in figures.batches.keys.sorted() {
                json.beginObject()
                json.member("batch_size", size)
                Self.write(InferenceStatistics.Duration(count: figures.batches[size]?.count ?? 0), as: "compute_input", to: &json)
                Self.write(figures.batches[size] ?? none, as: "compute_infer", to: &json)
                Self.write(InferenceStatistics.Duration(count: figures.batches[size]?.count ?? 0), as: "compute_output", to: &json)
                json.endObject()
            }
            json.endArray()
            json.endObject()
        }
        json.endArray()
        json.endObject()
        return Response.json(.ok, json.text)
    }

    private static func write(_ duration: InferenceStatistics.Duration, as key: String, to json: inout JSONWriter) {
        json.key(key)
        json.beginObject()
        json.member("count", duration.count)
        json.key("ns")
        json.raw(String(duration.nanoseconds))
        json.endObject()
    }
}
