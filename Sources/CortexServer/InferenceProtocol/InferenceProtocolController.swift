import CortexCore
public import CortexRuntime
public import Hummingbird

/// The Open Inference Protocol (KServe V2) over REST, JSON form.
///
/// `GET /v2`, `GET /v2/models/{model}[/versions/{version}]`, `.../ready`, and
/// `POST .../infer`, which validates every input against the model's signature before inference.
///
/// `{model}` may also be a named endpoint of `traffic.endpoints`: its requests go to one of its
/// two variants by weight (sticky with `X-Session-ID`), the answer names the variant
/// (`X-Model-Variant`), its metadata is its primary's, and it is ready when every variant with a
/// share is. A request naming a version goes to that model and version, past the split.
public struct InferenceProtocolController<Context: AuthenticatedContext>: Sendable {
    /// The order of a billed inference: parse, validate, limit, hold, run, settle.
    let pipeline: InferencePipeline
    let registry: ModelRegistry
    let maxBodyBytes: Int
    let serverVersion: String

    /// Creates the controller.
    public init(
        pipeline: InferencePipeline, registry: ModelRegistry, maxBodyBytes: Int,
        serverVersion: String
    ) {
        self.pipeline = pipeline
        self.registry = registry
        self.maxBodyBytes = maxBodyBytes
        self.serverVersion = serverVersion
    }

    /// Adds the protocol's routes: metadata and readiness on `router`, inference on `protected`.
    public func addRoutes(to router: some RouterMethods<Context>, protected: some RouterMethods<Context>) {
        router.get("/v2") { _, _ in
            var json = JSONWriter()
            json.beginObject()
            json.member("name", "cortex")
            json.member("version", serverVersion)
            json.key("extensions")
            json.beginArray()
            for name in ["binary_tensor_data", "model_configuration", "model_repository", "statistics"] { json.string(name) }
            json.endArray()
            json.endObject()
            return Response.json(.ok, json.text)
        }
        router.get("/v2/models/stats") { _, context in try self.stats(context) }
        for prefix in ["/v2/models/{model}", "/v2/models/{model}/versions/{version}"] {
            router.get(RouterPath(prefix)) { _, context in try self.metadata(context) }
            router.get(RouterPath(prefix + "/ready")) { _, context in try self.ready(context) }
            router.get(RouterPath(prefix + "/config")) { _, context in try self.config(context) }
            router.get(RouterPath(prefix + "/stats")) { _, context in try self.stats(context) }
            protected.post(RouterPath(prefix + "/infer")) { request, context in try await self.infer(request, context) }
        }
    }

    func names(_ context: Context) throws -> (model: String, version: String?) {
        let model = try context.parameters.require("model")
        return (model, context.parameters.get("version"))
    }

    /// The model whose metadata a name answers with: a named endpoint's primary, else the model.
    func describedModel(_ name: String) -> String {
        pipeline.traffic[name]?.variants.a ?? name
    }

    func metadata(_ context: Context) throws -> Response {
        let (name, version) = try names(context)
        let described = version == nil ? describedModel(name) : name
        let model = try registry.model(named: described, version: version)
        let metadata = model.metadata
        var json = JSONWriter(capacity: 512)
        json.beginObject()
        json.member("name", metadata.name)
        // Every version served under the name, as each is asked for in `/versions/{version}`.
        json.key("versions")
        json.beginArray()
        for entry in registry.versions(named: described) { json.string(entry.version ?? metadata.version) }
        json.endArray()
        json.member("platform", metadata.platform)
        for (key, specs) in [("inputs", metadata.inputs), ("outputs", metadata.outputs)] {
            json.key(key)
            json.beginArray()
            for spec in specs {
                json.beginObject()
                InferenceProtocolCodec.writeHead(name: spec.name, datatype: spec.datatype, shape: spec.shape, to: &json)
                json.endObject()
            }
            json.endArray()
        }
        if !metadata.featureNames.isEmpty {
            json.key("parameters")
            json.beginObject()
            json.key("feature_names")
            json.beginArray()
            for feature in metadata.featureNames { json.string(feature) }
            json.endArray()
            for key in metadata.properties.keys.sorted() {
                json.member(key, metadata.properties[key] ?? "")
            }
            json.endObject()
        }
        json.endObject()
        return Response.json(.ok, json.text)
    }

    func ready(_ context: Context) throws -> Response {
        let (name, version) = try names(context)
        // A named endpoint is ready when every variant it sends requests to is.
        let split = version == nil ? pipeline.traffic[name]?.state.split : nil
        let models = split.map { $0.variants.filter { $0.weight > 0 }.map(\.model) } ?? [name]
        var isReady = true
        for model in models {
            switch Result(catching: { () throws(APIError) in try registry.model(named: model, version: version) }) {
            case .success: continue
            case .failure(let error) where error.status == 503: isReady = false
            case .failure(let error): throw error
            }
        }
        var json = JSONWriter()
        json.beginObject()
        json.member("name", name)
        json.member("ready", isReady)
        json.endObject()
        return Response.json(isReady ? .ok : .serviceUnavailable, json.text)
    }

    func infer(_ request: Request, _ context: Context) async throws -> Response {
        let (name, version) = try names(context)
        // A named endpoint's split picks the variant; a version names a model past the split.
        let variant = version == nil ? pipeline.variant(of: name, request: request, context: context) : nil
        let model = try pipeline.runner.model(named: variant?.model ?? name, version: version, logger: context.logger)
        let buffer = try await request.collectBody(limit: maxBodyBytes)
        let headerLength = request.headers[.inferenceHeaderContentLength]
        // Formed only for a split's request (a shadow copy reads the body again): the others pay no closure.
        var shadowInputs: (@Sendable (any InferenceModel) throws -> [Tensor])?
        if variant != nil {
            shadowInputs = { shadow in
                try InferenceProtocolCodec.decode(buffer, headerLength: headerLength, for: shadow.metadata).tensors
            }
        }
        return try await pipeline.infer(
            model, request: request, context: context, variant: variant,
            parse: {
                let decoded = try InferenceProtocolCodec.decode(buffer, headerLength: headerLength, for: model.metadata)
                return (buffer, decoded.tensors, decoded)
            },
            render: { outputs, decoded in InferenceProtocolCodec.encode(outputs, of: model.metadata, answering: decoded) },
            shadowInputs: shadowInputs)
    }
}
