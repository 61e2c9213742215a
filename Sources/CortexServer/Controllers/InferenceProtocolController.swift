import CortexCore
public import CortexRuntime
public import Hummingbird

/// The Open Inference Protocol (KServe V2) over REST, JSON form.
///
/// `GET /v2`, `GET /v2/models/{model}[/versions/{version}]`, `.../ready`, and
/// `POST .../infer`, which validates every input against the model's signature before inference.
public struct InferenceProtocolController<Context: AuthenticatedContext>: Sendable {
    /// The body of `POST /v2/models/{model}/infer`.
    struct InferRequest {
        struct Input {
            var name: String
            var shape: [Int]
            var datatype: String
            var data: JSONValue
        }
        var id: String?
        var inputs: [Input]
        var outputs: [String]?

        init(json: JSONValue) throws(APIError) {
            _ = try json.object(at: "")
            id = try json["id"].map { value throws(APIError) in try value.string(at: "id") }
            inputs = []
            for (index, input) in try json.required("inputs", in: "").array(at: "inputs").enumerated() {
                let path = "inputs[\(index)]"
                _ = try input.object(at: path)
                inputs.append(
                    Input(
                        name: try input.required("name", in: path).string(at: path + ".name"),
                        shape: try input.required("shape", in: path).integers(at: path + ".shape"),
                        datatype: try input.required("datatype", in: path).string(at: path + ".datatype"),
                        data: try input.required("data", in: path)
                    )
                )
            }
            if let requested = json["outputs"] {
                var names: [String] = []
                for (index, output) in try requested.array(at: "outputs").enumerated() {
                    names.append(try output.required("name", in: "outputs[\(index)]").string(at: "outputs[\(index)].name"))
                }
                outputs = names
            }
        }
    }

    let runner: InferenceRunner
    let billing: Billing
    let modelLimits: ModelRateLimits
    let registry: ModelRegistry
    let maxBodyBytes: Int
    let serverVersion: String

    /// Creates the controller.
    public init(
        runner: InferenceRunner, billing: Billing, modelLimits: ModelRateLimits, registry: ModelRegistry, maxBodyBytes: Int,
        serverVersion: String
    ) {
        self.runner = runner
        self.billing = billing
        self.modelLimits = modelLimits
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
            json.endArray()
            json.endObject()
            return ProbeController<Context>.json(.ok, json.text)
        }
        for prefix in ["/v2/models/{model}", "/v2/models/{model}/versions/{version}"] {
            router.get(RouterPath(prefix)) { _, context in try self.metadata(context) }
            router.get(RouterPath(prefix + "/ready")) { _, context in try self.ready(context) }
            protected.post(RouterPath(prefix + "/infer")) { request, context in try await self.infer(request, context) }
        }
    }

    private func names(_ context: Context) throws -> (model: String, version: String?) {
        let model = try context.parameters.require("model")
        return (model, context.parameters.get("version"))
    }

    func metadata(_ context: Context) throws -> Response {
        let (name, version) = try names(context)
        let model = try registry.model(named: name, version: version)
        let metadata = model.metadata
        var json = JSONWriter(capacity: 512)
        json.beginObject()
        json.member("name", metadata.name)
        json.key("versions")
        json.beginArray()
        json.string(metadata.version)
        json.endArray()
        json.member("platform", metadata.platform)
        for (key, specs) in [("inputs", metadata.inputs), ("outputs", metadata.outputs)] {
            json.key(key)
            json.beginArray()
            for spec in specs {
                json.beginObject()
                Self.writeHead(name: spec.name, datatype: spec.datatype, shape: spec.shape, to: &json)
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
        return ProbeController<Context>.json(.ok, json.text)
    }

    func ready(_ context: Context) throws -> Response {
        let (name, version) = try names(context)
        let isReady: Bool
        switch Result(catching: { () throws(APIError) in try registry.model(named: name, version: version) }) {
        case .success: isReady = true
        case .failure(let error) where error.status == 503: isReady = false
        case .failure(let error): throw error
        }
        var json = JSONWriter()
        json.beginObject()
        json.member("name", name)
        json.member("ready", isReady)
        json.endObject()
        return ProbeController<Context>.json(isReady ? .ok : .serviceUnavailable, json.text)
    }

    func infer(_ request: Request, _ context: Context) async throws -> Response {
        let (name, version) = try names(context)
        let model = try runner.model(named: name, version: version, logger: context.logger)
        let buffer = try await request.collectBody(limit: maxBodyBytes)
        let body = try InferRequest(json: try JSONValue.parse(buffer))
        var tensors: [Tensor] = []
        tensors.reserveCapacity(body.inputs.count)
        for input in body.inputs {
            tensors.append(try Self.tensor(from: input))
        }
        let requested = body.outputs
        if let requested {
            let known = Set(model.metadata.outputs.map(\.name))
            if let unknown = requested.first(where: { !known.contains($0) }) {
                throw APIError.invalidTensor(
                    "unknown output '\(unknown)'; model '\(name)' has \(known.sorted().map { "'\($0)'" }.joined(separator: ", "))"
                )
            }
        }
        let validated = try runner.validate(model, inputs: tensors, logger: context.logger)
        try await modelLimits.check(model: model.metadata.name, context: context)
        return try await billing.charge(model: model.metadata.name, request: request, body: buffer, context: context) {
            Self.render(try runner.predict(validated), of: model, id: body.id, requested: requested)
        }
    }

    private static func render(_ outputs: [Tensor], of model: any InferenceModel, id: String?, requested: [String]?) -> String {
        var json = JSONWriter(capacity: 256)
        json.beginObject()
        json.member("model_name", model.metadata.name)
        json.member("model_version", model.metadata.version)
        if let id {
            json.member("id", id)
        }
        json.key("outputs")
        json.beginArray()
        for output in outputs where requested?.contains(output.name) ?? true {
            write(output, to: &json)
        }
        json.endArray()
        json.endObject()
        return json.text
    }

    /// Converts a JSON input into a typed tensor, rejecting values that do not fit its datatype.
    ///
    /// `data` may be flat or nested as deep as the shape has dimensions, row-major either way.
    static func tensor(from input: InferRequest.Input) throws(APIError) -> Tensor {
        guard let datatype = TensorDataType(rawValue: input.datatype) else {
            throw .invalidTensor(
                "input '\(input.name)' has unknown datatype '\(input.datatype)'; expected one of "
                    + TensorDataType.allCases.map(\.rawValue).joined(separator: ", ")
            )
        }
        guard case .array = input.data else {
            throw JSONValue.wrongType("data of input '\(input.name)'", expected: "an array", got: input.data)
        }
        var values: [JSONValue] = []
        if let count = TensorShape(input.shape).elementCount { values.reserveCapacity(min(count, 1 << 20)) }
        let depth = flatten(input.data, into: &values)
        guard depth == 1 || depth == input.shape.count else {
            throw .invalidTensor(
                "input '\(input.name)' nests its data \(depth) deep; shape \(TensorShape(input.shape)) allows flat data or \(input.shape.count) levels"
            )
        }
        let data: TensorData
        switch datatype {
        case .bool:
            var bools: [Bool] = []
            bools.reserveCapacity(values.count)
            for value in values {
                guard case .bool(let flag) = value else { throw Self.mismatch(input.name, datatype, value) }
                bools.append(flag)
            }
            data = .bool(bools)
        case .bytes:
            var strings: [String] = []
            strings.reserveCapacity(values.count)
            for value in values {
                guard case .string(let text) = value else { throw Self.mismatch(input.name, datatype, value) }
                strings.append(text)
            }
            data = .bytes(strings)
        case .fp16, .fp32, .fp64:
            var numbers: [Double] = []
            numbers.reserveCapacity(values.count)
            for value in values {
                switch value {
                case .number(let number): numbers.append(number)
                // `null` marks a missing value; the signature decides whether that is allowed.
                case .null: numbers.append(.nan)
                default: throw Self.mismatch(input.name, datatype, value)
                }
            }
            data = .float(numbers)
        default:
            var integers: [Int64] = []
            integers.reserveCapacity(values.count)
            for value in values {
                guard case .number(let number) = value else { throw Self.mismatch(input.name, datatype, value) }
                guard let integer = Int64(exactly: number) else {
                    throw .invalidTensor("input '\(input.name)' is \(datatype.rawValue) but holds \(number), which is not an integer")
                }
                integers.append(integer)
            }
            data = .int(integers)
        }
        return Tensor(name: input.name, datatype: datatype, shape: TensorShape(input.shape), data: data)
    }

    /// Appends the leaves of nested arrays in order; returns the deepest nesting seen.
    private static func flatten(_ value: JSONValue, into values: inout [JSONValue]) -> Int {
        guard case .array(let elements) = value else {
            values.append(value)
            return 0
        }
        var depth = 0
        for element in elements {
            depth = max(depth, flatten(element, into: &values))
        }
        return depth + 1
    }

    private static func mismatch(_ name: String, _ datatype: TensorDataType, _ value: JSONValue) -> APIError {
        .invalidTensor("input '\(name)' is \(datatype.rawValue) but its data holds \(value.kind)")
    }

    /// The `name`, `datatype` and `shape` members shared by tensor metadata and tensors.
    static func writeHead(name: String, datatype: TensorDataType, shape: TensorShape, to json: inout JSONWriter) {
        json.member("name", name)
        json.member("datatype", datatype.rawValue)
        json.key("shape")
        json.beginArray()
        for dimension in shape.dimensions { json.number(dimension) }
        json.endArray()
    }

    static func write(_ tensor: Tensor, to json: inout JSONWriter) {
        json.beginObject()
        writeHead(name: tensor.name, datatype: tensor.datatype, shape: tensor.shape, to: &json)
        json.key("data")
        json.beginArray()
        switch tensor.data {
        case .bool(let values): for value in values { json.bool(value) }
        case .int(let values): for value in values { json.raw(String(value)) }
        case .float(let values):
            if tensor.datatype == .fp32 {
                for value in values { json.number(Float(value)) }
            } else {
                for value in values { json.number(value) }
            }
        case .bytes(let values): for value in values { json.string(value) }
        }
        json.endArray()
        json.endObject()
    }
}
