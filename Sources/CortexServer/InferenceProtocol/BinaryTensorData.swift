import CortexCore

/// Tensors as raw bytes: the Open Inference Protocol's binary data extension (Triton's
/// `binary_data_size`).
///
/// Elements are little-endian in their native width, row-major; `BOOL` is one byte per element
/// (0 or 1); `BYTES` is each element's length as a 4-byte little-endian integer, then its bytes.
enum BinaryTensorData {
    /// Reads `count` elements of `datatype` from `bytes` (exactly the tensor's bytes).
    ///
    /// - Throws: ``APIError`` 400 naming the input when the size or an element is wrong.
    static func decode(_ bytes: ArraySlice<UInt8>, datatype: TensorDataType, count: Int, input: String) throws(APIError) -> TensorData {
        if datatype == .bytes {
            return try decodeStrings(bytes, count: count, input: input)
        }
        // The count comes from the client's shape: its byte size may not fit in an Int.
        let (needed, overflow) = count.multipliedReportingOverflow(by: datatype.byteWidth)
        guard !overflow, bytes.count == needed else {
            throw .invalidTensor(
                "input '\(input)' has \(bytes.count) bytes of binary data; \(count) \(datatype.rawValue) elements need \(overflow ? "more than any request holds" : String(needed))"
            )
        }
        return bytes.withUnsafeBytes { TensorData(littleEndian: $0, as: datatype, count: count) }
    }

    private static func decodeStrings(_ bytes: ArraySlice<UInt8>, count: Int, input: String) throws(APIError) -> TensorData {
        var strings: [String] = []
        strings.reserveCapacity(min(count, bytes.count / 4))
        var index = bytes.startIndex
        for _ in 0..<count {
            guard bytes.endIndex - index >= 4 else {
                throw .invalidTensor("input '\(input)' ends before its \(count) BYTES elements do")
            }
            let length = bytes[index..<index + 4].reversed().reduce(0) { $0 << 8 | Int($1) }
            index += 4
            guard bytes.endIndex - index >= length else {
                throw .invalidTensor("input '\(input)' ends inside a BYTES element of \(length) bytes")
            }
            strings.append(String(decoding: bytes[index..<index + length], as: UTF8.self))
            index += length
        }
        guard index == bytes.endIndex else {
            throw .invalidTensor("input '\(input)' has \(bytes.endIndex - index) bytes after its \(count) BYTES elements")
        }
        return .bytes(strings)
    }

    /// Appends a tensor's elements to `bytes` in the binary layout.
    static func encode(_ tensor: Tensor, into bytes: inout [UInt8]) {
        func append<T>(_ value: T) {
            withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
        }
        switch (tensor.data, tensor.datatype) {
        case (.float(let values), .fp32): for value in values { append(Float(value).bitPattern.littleEndian) }
        case (.float(let values), .fp16): for value in values { append(Float16(value).bitPattern.littleEndian) }
        case (.float(let values), _): for value in values { append(value.bitPattern.littleEndian) }
        case (.int(let values), .int8): for value in values { append(Int8(truncatingIfNeeded: value)) }
        case (.int(let values), .int16): for value in values { append(Int16(truncatingIfNeeded: value).littleEndian) }
        case (.int(let values), .int32): for value in values { append(Int32(truncatingIfNeeded: value).littleEndian) }
        case (.int(let values), .uint8): for value in values { append(UInt8(truncatingIfNeeded: value)) }
        case (.int(let values), .uint16): for value in values { append(UInt16(truncatingIfNeeded: value).littleEndian) }
        case (.int(let values), .uint32): for value in values { append(UInt32(truncatingIfNeeded: value).littleEndian) }
        case (.int(let values), .uint64): for value in values { append(UInt64(truncatingIfNeeded: value).littleEndian) }
        case (.int(let values), _): for value in values { append(value.littleEndian) }
        case (.bool(let values), _): for value in values { bytes.append(value ? 1 : 0) }
        case (.bytes(let values), _):
            for value in values {
                append(UInt32(value.utf8.count).littleEndian)
                bytes.append(contentsOf: value.utf8)
            }
        }
    }
}
