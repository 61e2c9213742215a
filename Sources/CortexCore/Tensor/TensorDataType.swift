/// The element type of a tensor, named as the Open Inference Protocol names it.
public enum TensorDataType: String, Sendable, Hashable, Codable, CaseIterable {
    case bool = "BOOL"
    case uint8 = "UINT8"
    case uint16 = "UINT16"
    case uint32 = "UINT32"
    case uint64 = "UINT64"
    case int8 = "INT8"
    case int16 = "INT16"
    case int32 = "INT32"
    case int64 = "INT64"
    case fp16 = "FP16"
    case fp32 = "FP32"
    case fp64 = "FP64"
    case bytes = "BYTES"

    /// Whether elements are floating point numbers.
    public var isFloatingPoint: Bool {
        switch self {
        case .fp16, .fp32, .fp64: true
        default: false
        }
    }

    /// Whether elements are integers (signed or unsigned).
    public var isInteger: Bool {
        switch self {
        case .uint8, .uint16, .uint32, .uint64, .int8, .int16, .int32, .int64: true
        default: false
        }
    }

    /// The inclusive range an integer element must fall in, `nil` for other types.
    public var integerRange: ClosedRange<Double>? {
        switch self {
        case .uint8: 0...Double(UInt8.max)
        case .uint16: 0...Double(UInt16.max)
        case .uint32: 0...Double(UInt32.max)
        case .uint64: 0...Double(UInt64.max)
        case .int8: Double(Int8.min)...Double(Int8.max)
        case .int16: Double(Int16.min)...Double(Int16.max)
        case .int32: Double(Int32.min)...Double(Int32.max)
        case .int64: Double(Int64.min)...Double(Int64.max)
        default: nil
        }
    }
}
