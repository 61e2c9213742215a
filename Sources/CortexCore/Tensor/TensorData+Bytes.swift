extension TensorData {
    /// Reads `count` elements of `datatype` laid out little-endian in their native width (BOOL:
    /// one byte each), at any alignment: the layout of ONNX Runtime's buffers and of the Open
    /// Inference Protocol's binary data. `raw` must hold exactly `count * datatype.byteWidth` bytes;
    /// BYTES has no fixed width and reads as empty.
    public init(littleEndian raw: UnsafeRawBufferPointer, as datatype: TensorDataType, count: Int) {
        func floats<T: BinaryFloatingPoint>(_: T.Type) -> TensorData {
            .float((0..<count).map { Double(raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) })
        }
        func integers<T: FixedWidthInteger>(_: T.Type) -> TensorData {
            .int(
                (0..<count).map {
                    Int64(truncatingIfNeeded: T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)))
                })
        }
        switch datatype {
        case .fp32: self = floats(Float.self)
        case .fp64: self = floats(Double.self)
        case .fp16: self = floats(Float16.self)
        case .int8: self = integers(Int8.self)
        case .int16: self = integers(Int16.self)
        case .int32: self = integers(Int32.self)
        case .int64: self = integers(Int64.self)
        case .uint8: self = integers(UInt8.self)
        case .uint16: self = integers(UInt16.self)
        case .uint32: self = integers(UInt32.self)
        case .uint64: self = integers(UInt64.self)
        case .bool: self = .bool(raw.prefix(count).map { $0 != 0 })
        case .bytes: self = .bytes([])
        }
    }
}
