import CortexCore
import CortexRuntime
import NIOCore

/// The Open Inference Protocol's (KServe V2) REST body, read and written without HTTP: the
/// request (`inputs` as JSON `data`, or raw bytes with the binary data extension, and the
/// `outputs` asked for) into typed tensors, and the outputs into the answer. Tested directly
/// (`InferenceProtocolCodecTests`); ``InferenceProtocolController`` only moves bytes.
enum InferenceProtocolCodec {
    /// The body of `POST /v2/models/{model}/infer`.
    struct InferRequest: Sendable {
        struct Input: Sendable {
            var name: String
            var shape: [Int]
            var datatype: String
            /// The JSON `data`, or `nil` when the tensor is binary (`binary_data_size`).
            var data: JSONValue?
            var binaryDataSize: Int?
        }
        struct Output: Sendable {
            var name: String
            /// `parameters.binary_data`; `nil` follows the request's `binary_data_output`.
            var binary: Bool?
        }
        var id: String?
        var inputs: [Input]
        var outputs: [Output]?
        /// `parameters.binary_data_output`: every output as binary data unless it says otherwise.
        var binaryDataOutput = false

        init(json: JSONValue) throws(APIError) {
            _ = try json.object(at: "")
            id = try json["id"].map { value throws(APIError) in try value.string(at: "id") }
            if let parameters = json["parameters"] {
                binaryDataOutput = try Self.flag("binary_data_output", in: parameters, at: "parameters") ?? false
            }
            inputs = []
            for (index, input) in try json.required("inputs", in: "").array(at: "inputs").enumerated() {
                let path = "inputs[\(index)]"
                _ = try input.object(at: path)
                var binaryDataSize: Int?
                if let parameters = input["parameters"], let size = parameters["binary_data_size"] {
                    guard case .number(let number) = size, let bytes = Int(exactly: number), bytes >= 0 else {
                        throw JSONValue.wrongType(path + ".parameters.binary_data_size", expected: "a byte count", got: size)
                    }
                    binaryDataSize = bytes
                }
                let data = input["data"]
                guard (data == nil) != (binaryDataSize == nil) else {
                    throw APIError.invalidJSON(
                        "'\(path)' needs either 'data' or 'parameters.binary_data_size' (with Inference-Header-Content-Length), not \(data == nil ? "neither" : "both")"
                    )
                }
                inputs.append(
                    Input(
                        name: try input.required("name", in: path).string(at: path + ".name"),
                        shape: try input.required("shape", in: path).integers(at: path + ".shape"),
                        datatype: try input.required("datatype", in: path).string(at: path + ".datatype"),
                        data: data,
                        binaryDataSize: binaryDataSize
                    )
                )
            }
            if let requested = json["outputs"] {
                var outputs: [Output] = []
                for (index, output) in try requested.array(at: "outputs").enumerated() {
                    let path = "outputs[\(index)]"
                    let binary = try output["parameters"].flatMap { parameters throws(APIError) in
                        try Self.flag("binary_data", in: parameters, at: path + ".parameters")
                    }
                    outputs.append(Output(name: try output.required("name", in: path).string(at: path + ".name"), binary: binary))
                }
                self.outputs = outputs
            }
        }

        private static func flag(_ key: String, in parameters: JSONValue, at path: String) throws(APIError) -> Bool? {
            _ = try parameters.object(at: path)
            return try parameters[key]?.bool(at: "\(path).\(key)")
        }
    }

    /// A request read: its id, its tensors (in the order sent), and the outputs asked for (by index
    /// into the model's outputs, binary or not).
    struct Decoded: Sendable {
        var id: String?
        var tensors: [Tensor]
        var requested: [(index: Int, binary: Bool)]
    }

    /// Reads an inference request's body: JSON, or with the binary data extension
    /// (`headerLength`, the `Inference-Header-Content-Length` value) JSON followed by the tensors' bytes.
    ///
    /// - Throws: ``APIError`` 400 naming what is wrong (the field, the input, the byte counts).
    static func decode(_ buffer: ByteBuffer, headerLength field: String?, for model: ModelMetadata) throws(APIError) -> Decoded {
        var json = buffer
        var binary: [UInt8] = []
        if let field {
            guard let length = Int(field), length > 0, length <= buffer.readableBytes else {
                throw APIError.invalidJSON(
                    "Inference-Header-Content-Length must be the length of the JSON part, 1 to \(buffer.readableBytes); got '\(field)'"
                )
            }
            json = buffer.getSlice(at: buffer.readerIndex, length: length) ?? buffer
            binary = buffer.getBytes(at: buffer.readerIndex + length, length: buffer.readableBytes - length) ?? []
        }
        let body = try InferRequest(json: try JSONValue.parse(json))
        let tensors = try Self.tensors(from: body.inputs, binary: binary)
        var requested: [(index: Int, binary: Bool)] = []
        if let outputs = body.outputs {
            let known = model.outputs.map(\.name)
            for output in outputs {
                guard let index = known.firstIndex(of: output.name) else {
                    throw APIError.invalidTensor(
                        "unknown output '\(output.name)'; model '\(model.name)' has \(known.map { "'\($0)'" }.joined(separator: ", "))"
                    )
                }
                requested.append((index, output.binary ?? body.binaryDataOutput))
            }
        } else {
            requested = model.outputs.indices.map { ($0, body.binaryDataOutput) }
        }
        return Decoded(id: body.id, tensors: tensors, requested: requested)
    }

    /// The request's tensors: JSON `data`, or their bytes in order from `binary`.
    static func tensors(from inputs: [InferRequest.Input], binary: [UInt8]) throws(APIError) -> [Tensor] {
        var tensors: [Tensor] = []
        tensors.reserveCapacity(inputs.count)
        var offset = 0
        for input in inputs {
            guard let size = input.binaryDataSize else {
                tensors.append(try tensor(from: input))
                continue
            }
            let datatype = try Self.datatype(of: input)
            guard size <= binary.count - offset else {
                throw .invalidTensor(
                    "input '\(input.name)' claims \(size) bytes of binary data, but only \(binary.count - offset) follow the JSON"
                )
            }
            guard let count = TensorShape(input.shape).elementCount else {
                throw .invalidTensor("input '\(input.name)' has an invalid shape \(TensorShape(input.shape))")
            }
            let data = try BinaryTensorData.decode(binary[offset..<offset + size], datatype: datatype, count: count, input: input.name)
            offset += size
            tensors.append(Tensor(name: input.name, datatype: datatype, shape: TensorShape(input.shape), data: data))
        }
        guard offset == binary.count else {
            throw .invalidTensor("\(binary.count - offset) bytes of binary data follow the inputs that claim them")
        }
        return tensors
    }

    /// The answer to `request`: the outputs it asked for, as JSON `data` or (binary) raw bytes after the JSON.
    static func encode(_ outputs: [Tensor], of model: ModelMetadata, answering request: Decoded) -> ResponseContent {
        var json = JSONWriter(capacity: 256)
        var binary: [UInt8]?
        json.beginObject()
        json.member("model_name", model.name)
        json.member("model_version", model.version)
        if let id = request.id {
            json.member("id", id)
        }
        json.key("outputs")
        json.beginArray()
        for (index, asBinary) in request.requested where index < outputs.count {
            let output = outputs[index]
            guard asBinary else {
                write(output, to: &json)
                continue
            }
            var bytes = binary ?? []
            let before = bytes.count
            BinaryTensorData.encode(output, into: &bytes)
            binary = bytes
            json.beginObject()
            writeHead(name: output.name, datatype: output.datatype, shape: output.shape, to: &json)
            json.key("parameters")
            json.beginObject()
            json.member("binary_data_size", bytes.count - before)
            json.endObject()
            json.endObject()
        }
        json.endArray()
        json.endObject()
        return ResponseContent(json: json.text, binary: binary)
    }

    static func datatype(of input: InferRequest.Input) throws(APIError) -> TensorDataType {
        guard let datatype = TensorDataType(rawValue: input.datatype) else {
            throw .invalidTensor(
                "input '\(input.name)' has unknown datatype '\(input.datatype)'; expected one of "
                    + TensorDataType.allCases.map(\.rawValue).joined(separator: ", ")
            )
        }
        return datatype
    }

    /// Converts a JSON input into a typed tensor, rejecting values that do not fit its datatype.
    ///
    /// `data` may be flat or nested as deep as the shape has dimensions, row-major either way.
    static func tensor(from input: InferRequest.Input) throws(APIError) -> Tensor {
        let datatype = try datatype(of: input)
        guard let json = input.data, case .array = json else {
            throw JSONValue.wrongType("data of input '\(input.name)'", expected: "an array", got: input.data ?? .null)
        }
        var values: [JSONValue] = []
        if let count = TensorShape(input.shape).elementCount { values.reserveCapacity(min(count, 1 << 20)) }
        let depth = flatten(json, into: &values)
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
