import CortexCore
public import CortexRuntime
public import Hummingbird

/// The lead-scoring API: named features in, scores out, for one lead or a batch.
///
/// `POST /api/v1/score` takes `{"lead_id": "L-1", "features": {"pages_viewed": 12, ...}}` or
/// `{"leads": [{...}, ...]}`; a feature left out or `null` is missing, which the trees handle.
/// `GET /api/v1/model/info` describes the scoring model.
public struct ScoringController<Context: AuthenticatedContext>: Sendable {
    /// Most leads one batch may carry.
    public static var maximumBatch: Int { 1000 }

    struct Lead {
        var leadID: String?
        var features: [(key: String, value: JSONValue)]

        init(json: JSONValue, path: String) throws(APIError) {
            _ = try json.object(at: path)
            leadID = try json["lead_id"].map { value throws(APIError) in try value.string(at: path + "lead_id") }
            features = try json.required("features", in: path).object(at: path + "features")
        }
    }

    /// The order of a billed inference: parse, validate, limit, hold, run, settle.
    let pipeline: InferencePipeline
    let registry: ModelRegistry
    let modelName: String?
    let maxBodyBytes: Int

    /// Creates the controller.
    ///
    /// - Parameter modelName: The model to score with; `nil` takes the first ready model with named features.
    public init(
        pipeline: InferencePipeline, registry: ModelRegistry, modelName: String?,
        maxBodyBytes: Int
    ) {
        self.pipeline = pipeline
        self.registry = registry
        self.modelName = modelName
        self.maxBodyBytes = maxBodyBytes
    }

    /// Adds the routes (both need an API key when keys are required).
    public func addRoutes(to router: some RouterMethods<Context>) {
        router.post("/api/v1/score") { request, context in try await self.score(request, context) }
        router.get("/api/v1/model/info") { _, context in try self.info(context) }
    }

    private func scoringModel(_ context: Context) throws(APIError) -> any InferenceModel {
        if let modelName {
            return try pipeline.runner.model(named: modelName, logger: context.logger)
        }
        for entry in registry.entries {
            // Named features make a model scorable by name, with or without a dynamic batcher.
            if case .ready(let model) = entry.state, !model.metadata.featureNames.isEmpty {
                return model
            }
        }
        throw APIError(status: 503, code: "model_not_ready", message: "no tabular scoring model is ready")
    }

    func score(_ request: Request, _ context: Context) async throws -> Response {
        let model = try scoringModel(context)
        let metadata = model.metadata
        let requestID = context.requestID
        // What was scored, counted once the answer is settled (a replayed answer scored nothing).
        var scored: (scores: [Double]?, count: Int)?
        let response = try await pipeline.infer(model, request: request, context: context) {
            let (buffer, leads, isBatch, input) = try await Self.parse(request, for: metadata, maxBodyBytes: maxBodyBytes)
            return (buffer, [input], (leads, isBatch))
        } render: { outputs, parsed in
            guard let output = outputs.first, case .float(let values) = output.data else {
                throw APIError.inferenceFailed(model: metadata.name)
            }
            scored = (values.count == parsed.0.count ? values : nil, parsed.0.count)
            return ResponseContent(json: Self.render(values, leads: parsed.0, isBatch: parsed.1, metadata: metadata, requestID: requestID))
        }
        if let scored { pipeline.runner.metrics.leadsScored(scored.scores, count: scored.count) }
        return response
    }

    /// The body, its leads, whether it was a batch, and the leads as the model's input (missing features NaN).
    private static func parse(
        _ request: Request, for metadata: ModelMetadata, maxBodyBytes: Int
    ) async throws -> (ByteBuffer, [Lead], Bool, Tensor) {
        let buffer = try await request.collectBody(limit: maxBodyBytes)
        let body = try JSONValue.parse(buffer)
        _ = try body.object(at: "")
        let leads: [Lead]
        let isBatch: Bool
        switch (body["features"], body["leads"]) {
        case (.some, nil):
            leads = [try Lead(json: body, path: "")]
            isBatch = false
        case (nil, let batch?):
            let elements = try batch.array(at: "leads")
            guard !elements.isEmpty, elements.count <= Self.maximumBatch else {
                throw APIError.invalidInput("'leads' must hold 1 to \(Self.maximumBatch) leads; got \(elements.count)")
            }
            var parsed: [Lead] = []
            parsed.reserveCapacity(elements.count)
            for (index, element) in elements.enumerated() {
                parsed.append(try Lead(json: element, path: "leads[\(index)]."))
            }
            leads = parsed
            isBatch = true
        default:
            throw APIError.invalidInput("send either 'features' for one lead or 'leads' for a batch")
        }

        let columns = Dictionary(uniqueKeysWithValues: metadata.featureNames.enumerated().map { ($1, $0) })
        var matrix = [Double](repeating: .nan, count: leads.count * columns.count)
        for (row, lead) in leads.enumerated() {
            let which = isBatch ? "leads[\(row)]." : ""
            let unknown = lead.features.map(\.key).filter { columns[$0] == nil }.sorted()
            guard unknown.isEmpty else {
                throw APIError.invalidInput(
                    "\(which)features has unknown names: \(unknown.joined(separator: ", "))",
                    fields: [("expected_features", .strings(metadata.featureNames))]
                )
            }
            for (name, value) in lead.features {
                guard let column = columns[name] else { continue }
                switch value {
                case .number(let number): matrix[row * columns.count + column] = number
                case .null: continue
                default:
                    throw APIError.invalidInput("\(which)features.\(name) must be a number or null; got \(value.kind)")
                }
            }
        }
        let input = Tensor(
            name: TreeEnsembleModel.inputName,
            datatype: .fp32,
            shape: TensorShape([leads.count, columns.count]),
            data: .float(matrix)
        )
        return (buffer, leads, isBatch, input)
    }

    private static func render(_ values: [Double], leads: [Lead], isBatch: Bool, metadata: ModelMetadata, requestID: String) -> String {
        let width = max(values.count / max(leads.count, 1), 1)

        var json = JSONWriter(capacity: 128 + leads.count * 48)
        func writeScore(_ row: Int) {
            if width == 1 {
                json.key("score")
                json.number(Float(values[row]))
            } else {
                json.key("probabilities")
                json.beginArray()
                for value in values[(row * width)..<((row + 1) * width)] { json.number(Float(value)) }
                json.endArray()
            }
        }
        json.beginObject()
        if isBatch {
            json.key("scores")
            json.beginArray()
            for (row, lead) in leads.enumerated() {
                json.beginObject()
                if let id = lead.leadID {
                    json.member("lead_id", id)
                }
                writeScore(row)
                json.endObject()
            }
            json.endArray()
            json.member("count", leads.count)
        } else {
            if let id = leads[0].leadID {
                json.member("lead_id", id)
            }
            writeScore(0)
        }
        json.member("model", metadata.name)
        json.member("model_version", metadata.version)
        json.member("request_id", requestID)
        json.endObject()
        return json.text
    }

    func info(_ context: Context) throws -> Response {
        let metadata = try scoringModel(context).metadata
        var json = JSONWriter(capacity: 512)
        json.beginObject()
        json.member("name", metadata.name)
        json.member("version", metadata.version)
        json.member("platform", metadata.platform)
        json.member("status", "ready")
        for key in metadata.properties.keys.sorted() {
            json.member(key, metadata.properties[key] ?? "")
        }
        json.key("features")
        json.beginArray()
        for name in metadata.featureNames { json.string(name) }
        json.endArray()
        json.endObject()
        return Response.json(.ok, json.text)
    }
}
