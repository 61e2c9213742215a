/// A named, typed, shaped tensor: the unit of model input and output.
public struct Tensor: Sendable, Equatable {
    /// The tensor's name in the model signature.
    public var name: String
    /// The element type.
    public var datatype: TensorDataType
    /// The concrete shape.
    public var shape: TensorShape
    /// The elements, row-major.
    public var data: TensorData

    /// Creates a tensor.
    public init(name: String, datatype: TensorDataType, shape: TensorShape, data: TensorData) {
        self.name = name
        self.datatype = datatype
        self.shape = shape
        self.data = data
    }
}
