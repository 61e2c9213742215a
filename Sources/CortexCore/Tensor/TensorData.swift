/// The elements of a tensor in row-major order.
///
/// Numbers are kept in the widest Swift type of their family; the tensor's
/// ``TensorDataType`` says how a backend must read them.
public enum TensorData: Sendable, Equatable {
    /// Boolean elements.
    case bool([Bool])
    /// Integer elements of any width, signed or unsigned up to `Int64.max`.
    case int([Int64])
    /// Floating point elements; `nan` marks a missing value where a model allows it.
    case float([Double])
    /// Byte strings (the `BYTES` type), kept as UTF-8 text in the JSON form.
    case bytes([String])

    /// Number of elements.
    public var count: Int {
        switch self {
        case .bool(let values): values.count
        case .int(let values): values.count
        case .float(let values): values.count
        case .bytes(let values): values.count
        }
    }
}
