/// The declared name, type and shape of one model input or output.
public struct TensorSpec: Sendable, Hashable, Codable {
    /// The tensor's name.
    public var name: String
    /// The element type.
    public var datatype: TensorDataType
    /// The shape, with `-1` for dynamic dimensions.
    public var shape: TensorShape
    /// Whether elements may be missing (`null` in JSON, NaN for a backend that understands it).
    public var allowsMissingValues: Bool

    /// Creates a tensor specification.
    public init(name: String, datatype: TensorDataType, shape: TensorShape, allowsMissingValues: Bool = false) {
        self.name = name
        self.datatype = datatype
        self.shape = shape
        self.allowsMissingValues = allowsMissingValues
    }

    enum CodingKeys: String, CodingKey {
        case name, datatype, shape
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.name = try container.decode(String.self, forKey: .name)
        self.datatype = try container.decode(TensorDataType.self, forKey: .datatype)
        self.shape = try container.decode(TensorShape.self, forKey: .shape)
        self.allowsMissingValues = false
    }

    /// Checks a request tensor against this specification.
    ///
    /// - Throws: ``APIError`` with code `invalid_tensor` naming what was expected.
    public func validate(_ tensor: Tensor) throws(APIError) {
        guard tensor.datatype == datatype else {
            throw .invalidTensor("input '\(name)' has datatype \(tensor.datatype.rawValue); expected \(datatype.rawValue)")
        }
        guard shape.accepts(tensor.shape) else {
            throw .invalidTensor("input '\(name)' has shape \(tensor.shape); expected \(shape)")
        }
        // An empty dimension leaves nothing to infer, and a graph that resizes or pools cannot take it.
        guard !tensor.shape.dimensions.contains(0) else {
            throw .invalidTensor("input '\(name)' has shape \(tensor.shape); every dimension must be at least 1")
        }
        guard let expectedCount = tensor.shape.elementCount, expectedCount == tensor.data.count else {
            throw .invalidTensor(
                "input '\(name)' has \(tensor.data.count) elements; shape \(tensor.shape) needs \(tensor.shape.elementCount.map(String.init) ?? "a valid shape")"
            )
        }
        switch (datatype, tensor.data) {
        case (.bool, .bool), (.bytes, .bytes):
            return
        case (let type, .int(let values)) where type.isInteger:
            if let range = type.integerRange, let bad = values.first(where: { !range.contains(Double($0)) }) {
                throw .invalidTensor("input '\(name)' has value \(bad) outside the range of \(type.rawValue)")
            }
        case (let type, .float(let values)) where type.isFloatingPoint:
            if !allowsMissingValues, values.contains(where: { $0.isNaN }) {
                throw .invalidTensor("input '\(name)' has missing values, which this model does not accept")
            }
            if type == .fp32, let bad = values.first(where: { $0.isFinite && abs($0) > Double(Float.greatestFiniteMagnitude) }) {
                throw .invalidTensor("input '\(name)' has value \(bad) outside the range of FP32")
            }
        default:
            throw .invalidTensor("input '\(name)' has elements that are not \(datatype.rawValue)")
        }
    }
}
