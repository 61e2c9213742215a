public import CortexCore

/// What a served model declares about itself: identity, platform and signature.
public struct ModelMetadata: Sendable, Equatable {
    /// The model's name, unique in a registry.
    public var name: String
    /// The model's version string.
    public var version: String
    /// The serving platform, e.g. `xgboost_json`.
    public var platform: String
    /// Input tensors, in order.
    public var inputs: [TensorSpec]
    /// Output tensors, in order.
    public var outputs: [TensorSpec]
    /// Names of the columns of a tabular model's feature matrix, in order; empty otherwise.
    public var featureNames: [String]
    /// Free-form facts shown by the info endpoints (objective, tree count, ...).
    public var properties: [String: String]

    /// Creates metadata.
    public init(
        name: String,
        version: String,
        platform: String,
        inputs: [TensorSpec],
        outputs: [TensorSpec],
        featureNames: [String] = [],
        properties: [String: String] = [:]
    ) {
        self.name = name
        self.version = version
        self.platform = platform
        self.inputs = inputs
        self.outputs = outputs
        self.featureNames = featureNames
        self.properties = properties
    }

    /// Validates request tensors against the inputs: every input present once, nothing unknown.
    ///
    /// - Returns: the tensors in signature order.
    public func validate(inputs tensors: [Tensor]) throws(APIError) -> [Tensor] {
        var byName: [String: Tensor] = [:]
        for tensor in tensors {
            guard inputs.contains(where: { $0.name == tensor.name }) else {
                throw .invalidTensor(
                    "unknown input '\(tensor.name)'; model '\(name)' expects \(inputs.map { "'\($0.name)'" }.joined(separator: ", "))"
                )
            }
            guard byName.updateValue(tensor, forKey: tensor.name) == nil else {
                throw .invalidTensor("input '\(tensor.name)' is given more than once")
            }
        }
        var ordered: [Tensor] = []
        ordered.reserveCapacity(inputs.count)
        for spec in inputs {
            guard let tensor = byName[spec.name] else {
                throw .invalidTensor("missing input '\(spec.name)' (\(spec.datatype.rawValue) \(spec.shape))")
            }
            try spec.validate(tensor)
            ordered.append(tensor)
        }
        return ordered
    }
}

extension ModelMetadata {
    /// Zeros for every input, each dynamic dimension `batch` (the first) or `size` (the others):
    /// input for timing a model (`cortex models bench`, bench/BareHummingbird's ONNX floor).
    public func zeroInputs(batch: Int, size: Int) -> [Tensor] {
        inputs.map { spec in
            var sized = spec
            sized.shape = TensorShape(
                spec.shape.dimensions.enumerated().map { index, dimension in dimension >= 0 ? dimension : (index == 0 ? batch : size) })
            return sized.zeros()
        }
    }
}

extension TensorSpec {
    /// A tensor of zeros (false, empty strings) of this spec, dynamic dimensions as 1: warm-up input.
    public func zeros() -> Tensor {
        let shape = TensorShape(shape.dimensions.map { $0 < 0 ? 1 : $0 })
        let count = shape.elementCount ?? 0
        let data: TensorData
        switch datatype {
        case .bool: data = .bool(Array(repeating: false, count: count))
        case .bytes: data = .bytes(Array(repeating: "", count: count))
        case .fp16, .fp32, .fp64: data = .float(Array(repeating: 0, count: count))
        default: data = .int(Array(repeating: 0, count: count))
        }
        return Tensor(name: name, datatype: datatype, shape: shape, data: data)
    }
}
