public import CortexCore
import Dispatch

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How ONNX Runtime runs a session: from the model's config.
public struct ONNXSessionOptions: Sendable, Hashable {
    /// Threads inside one operator; 1 suits a server that runs many requests at once.
    public var intraOpThreads = 1
    /// Threads across independent operators (only used by parallel execution).
    public var interOpThreads = 1
    /// `disable`, `basic`, `extended` or `all`.
    public var optimization = Optimization.all
    /// Whether the threads inside a run spin while they wait for work (ONNX Runtime's default).
    /// Spinning threads take the cores from the server's own threads between a run's operators.
    public var allowSpinning = true

    /// ONNX Runtime's graph optimisation levels.
    public enum Optimization: String, Sendable, Hashable, CaseIterable {
        case disable, basic, extended, all

        var level: Int32 {
            switch self {
            case .disable: 0
            case .basic: 1
            case .extended: 2
            case .all: 99
            }
        }
    }

    /// Creates the defaults.
    public init() {}
}

/// One ONNX Runtime inference session: the model's signature, and `Run`.
///
/// ONNX Runtime documents `Run` as safe to call from many threads on one session at once.
final class ONNXSession: @unchecked Sendable {
    let library: ONNXRuntimeLibrary
    private let session: OpaquePointer
    let inputs: [TensorSpec]
    let outputs: [TensorSpec]
    /// Names as C strings, alive as long as the session.
    private let inputNames: [UnsafeMutablePointer<CChar>]
    private let outputNames: [UnsafeMutablePointer<CChar>]

    /// Loads the model at `path`.
    ///
    /// - Throws: ``ONNXRuntimeError`` for a file ONNX Runtime refuses, with its message, or
    ///   an element type Cortex cannot carry.
    init(library: ONNXRuntimeLibrary, path: String, options: ONNXSessionOptions) throws(ONNXRuntimeError) {
        let api = library.api
        self.library = library
        var sessionOptions: OpaquePointer?
        try api.check(api.createSessionOptions(&sessionOptions))
        defer { api.releaseSessionOptions(sessionOptions) }
        try api.check(api.setIntraOpNumThreads(sessionOptions, Int32(options.intraOpThreads)))
        try api.check(api.setInterOpNumThreads(sessionOptions, Int32(options.interOpThreads)))
        try api.check(api.setSessionGraphOptimizationLevel(sessionOptions, options.optimization.level))
        if !options.allowSpinning {
            try api.check(api.addSessionConfigEntry(sessionOptions, "session.intra_op.allow_spinning", "0"))
        }
        var session: OpaquePointer?
        try api.check(api.createSession(library.environment, path, sessionOptions, &session))
        guard let session else { throw ONNXRuntimeError(code: 1, message: "ONNX Runtime returned no session") }
        self.session = session
        do {
            (inputs, inputNames) = try Self.signature(of: session, library: library, inputs: true)
            (outputs, outputNames) = try Self.signature(of: session, library: library, inputs: false)
        } catch {
            api.releaseSession(session)
            throw error
        }
    }

    deinit {
        library.api.releaseSession(session)
        for name in inputNames + outputNames { free(name) }
    }

    private static func signature(
        of session: OpaquePointer,
        library: ONNXRuntimeLibrary,
        inputs: Bool
    ) throws(ONNXRuntimeError) -> ([TensorSpec], [UnsafeMutablePointer<CChar>]) {
        let api = library.api
        var count = 0
        try api.check(inputs ? api.sessionGetInputCount(session, &count) : api.sessionGetOutputCount(session, &count))
        var specs: [TensorSpec] = []
        var names: [UnsafeMutablePointer<CChar>] = []
        for index in 0..<count {
            var allocated: UnsafeMutablePointer<CChar>?
            try api.check(
                inputs
                    ? api.sessionGetInputName(session, index, library.allocator, &allocated)
                    : api.sessionGetOutputName(session, index, library.allocator, &allocated)
            )
            guard let allocated else { throw ONNXRuntimeError(code: 1, message: "ONNX Runtime returned no name") }
            let name = String(cString: allocated)
            _ = api.allocatorFree(library.allocator, allocated)
            names.append(strdup(name))
            var typeInfo: OpaquePointer?
            try api.check(
                inputs ? api.sessionGetInputTypeInfo(session, index, &typeInfo) : api.sessionGetOutputTypeInfo(session, index, &typeInfo)
            )
            defer { api.releaseTypeInfo(typeInfo) }
            var tensorInfo: OpaquePointer?
            try api.check(api.castTypeInfoToTensorInfo(typeInfo, &tensorInfo))
            guard let tensorInfo else {
                throw ONNXRuntimeError(
                    code: 2,
                    message: "\(inputs ? "input" : "output") '\(name)' is not a tensor (sequences and maps are not supported)"
                )
            }
            var elementType: Int32 = 0
            try api.check(api.getTensorElementType(tensorInfo, &elementType))
            guard let datatype = TensorDataType(onnxElementType: elementType) else {
                throw ONNXRuntimeError(
                    code: 2,
                    message: "\(inputs ? "input" : "output") '\(name)' has ONNX element type \(elementType), which Cortex does not support"
                )
            }
            var rank = 0
            try api.check(api.getDimensionsCount(tensorInfo, &rank))
            var dimensions = [Int64](repeating: 0, count: rank)
            try api.check(api.getDimensions(tensorInfo, &dimensions, rank))
            specs.append(TensorSpec(name: name, datatype: datatype, shape: TensorShape(dimensions.map { $0 < 0 ? -1 : Int($0) })))
        }
        return (specs, names)
    }

    /// Times `iterations` bare `Run` calls on `inputs` (converted once, outputs released each
    /// time): the baseline Cortex's own cost per request is measured against.
    ///
    /// - Returns: Each call's nanoseconds.
    func timeRuns(_ inputs: [Tensor], iterations: Int) throws(ONNXRuntimeError) -> [UInt64] {
        let api = library.api
        return try withValues(of: inputs) { values throws(ONNXRuntimeError) in
            let inputNamePointers = inputNames.map { UnsafePointer<CChar>?(UnsafePointer($0)) }
            let outputNamePointers = outputNames.map { UnsafePointer<CChar>?(UnsafePointer($0)) }
            var times: [UInt64] = []
            times.reserveCapacity(iterations)
            for _ in 0..<iterations {
                var results = [OpaquePointer?](repeating: nil, count: outputNames.count)
                let start = DispatchTime.now().uptimeNanoseconds
                let status = api.run(
                    session, nil, inputNamePointers, values, values.count, outputNamePointers, outputNamePointers.count, &results)
                times.append(DispatchTime.now().uptimeNanoseconds - start)
                for result in results { api.releaseValue(result) }
                try api.check(status)
            }
            return times
        }
    }

    /// Calls `body` with an `OrtValue` per input, released (with their buffers) afterwards.
    private func withValues<Result>(
        of inputs: [Tensor],
        _ body: ([OpaquePointer?]) throws(ONNXRuntimeError) -> Result
    ) throws(ONNXRuntimeError) -> Result {
        let api = library.api
        var buffers: [UnsafeMutableRawBufferPointer] = []
        var values: [OpaquePointer?] = []
        defer {
            for value in values { api.releaseValue(value) }
            for buffer in buffers { buffer.deallocate() }
        }
        for (index, tensor) in inputs.enumerated() {
            values.append(try value(of: tensor, as: self.inputs[index].datatype, buffers: &buffers))
        }
        return try body(values)
    }

    /// Runs the session on `inputs` (one per declared input, in order, already validated) and
    /// returns the outputs at `outputIndices` (all when `nil`).
    func run(_ inputs: [Tensor], outputIndices: [Int]? = nil) throws(ONNXRuntimeError) -> [Tensor] {
        let api = library.api
        let wanted = outputIndices ?? Array(outputs.indices)
        return try withValues(of: inputs) { values throws(ONNXRuntimeError) in
            let inputNamePointers = inputNames.map { UnsafePointer<CChar>?(UnsafePointer($0)) }
            let outputNamePointers = wanted.map { UnsafePointer<CChar>?(UnsafePointer(outputNames[$0])) }
            var results = [OpaquePointer?](repeating: nil, count: wanted.count)
            defer { for result in results { api.releaseValue(result) } }
            try api.check(
                api.run(session, nil, inputNamePointers, values, values.count, outputNamePointers, outputNamePointers.count, &results)
            )
            var tensors: [Tensor] = []
            for (position, index) in wanted.enumerated() {
                tensors.append(try decode(results[position], name: outputs[index].name))
            }
            return tensors
        }
    }

    /// An `OrtValue` holding `tensor`: numbers in a buffer Cortex owns (added to `buffers`, which
    /// must outlive the value), strings copied into ONNX Runtime's own string tensor.
    private func value(
        of tensor: Tensor,
        as datatype: TensorDataType,
        buffers: inout [UnsafeMutableRawBufferPointer]
    ) throws(ONNXRuntimeError) -> OpaquePointer? {
        let api = library.api
        var shape = tensor.shape.dimensions.map(Int64.init)
        var value: OpaquePointer?
        if datatype == .bytes {
            try api.check(api.createTensorAsOrtValue(library.allocator, &shape, shape.count, datatype.onnxElementType, &value))
            guard case .bytes(let strings) = tensor.data, !strings.isEmpty else { return value }
            let copies = strings.map { strdup($0) }
            defer { for copy in copies { free(copy) } }
            let pointers = copies.map { $0.map { UnsafePointer<CChar>($0) } }
            let status = api.fillStringTensor(value, pointers, pointers.count)
            if status != nil { api.releaseValue(value) }
            try api.check(status)
            return value
        }
        let buffer = Self.encode(tensor.data, as: datatype)
        buffers.append(buffer)
        // `encode` allocates at least one byte, so there is always an address.
        guard let base = buffer.baseAddress else { throw ONNXRuntimeError(code: 1, message: "out of memory") }
        try api.check(
            api.createTensorWithDataAsOrtValue(
                library.cpuMemory, base, tensor.data.count * datatype.byteWidth, &shape, shape.count, datatype.onnxElementType, &value)
        )
        return value
    }

    /// The elements of an ONNX Runtime string tensor of `count` elements.
    private func strings(of value: OpaquePointer?, count: Int) throws(ONNXRuntimeError) -> [String] {
        guard count > 0 else { return [] }
        let api = library.api
        var length = 0
        try api.check(api.getStringTensorDataLength(value, &length))
        var bytes = [UInt8](repeating: 0, count: max(length, 1))
        var offsets = [Int](repeating: 0, count: count)
        let status = bytes.withUnsafeMutableBytes { api.getStringTensorContent(value, $0.baseAddress, length, &offsets, count) }
        try api.check(status)
        return (0..<count).map { index in
            let end = index + 1 < count ? offsets[index + 1] : length
            return String(decoding: bytes[offsets[index]..<end], as: UTF8.self)
        }
    }

    private func decode(_ value: OpaquePointer?, name: String) throws(ONNXRuntimeError) -> Tensor {
        let api = library.api
        var info: OpaquePointer?
        try api.check(api.getTensorTypeAndShape(value, &info))
        defer { api.releaseTensorTypeAndShapeInfo(info) }
        var elementType: Int32 = 0
        try api.check(api.getTensorElementType(info, &elementType))
        var rank = 0
        try api.check(api.getDimensionsCount(info, &rank))
        var dimensions = [Int64](repeating: 0, count: rank)
        try api.check(api.getDimensions(info, &dimensions, rank))
        var count = 0
        try api.check(api.getTensorShapeElementCount(info, &count))
        guard let datatype = TensorDataType(onnxElementType: elementType) else {
            throw ONNXRuntimeError(code: 1, message: "output '\(name)' has unsupported element type \(elementType)")
        }
        if datatype == .bytes {
            return Tensor(
                name: name, datatype: datatype, shape: TensorShape(dimensions.map(Int.init)),
                data: .bytes(try strings(of: value, count: count)))
        }
        var data: UnsafeMutableRawPointer?
        try api.check(api.getTensorMutableData(value, &data))
        let elements = UnsafeRawBufferPointer(start: data, count: count * datatype.byteWidth)
        return Tensor(
            name: name, datatype: datatype, shape: TensorShape(dimensions.map(Int.init)),
            data: TensorData(littleEndian: elements, as: datatype, count: count))
    }

    /// Packs validated elements into a new buffer in the element type's native layout.
    static func encode(_ data: TensorData, as datatype: TensorDataType) -> UnsafeMutableRawBufferPointer {
        // At least one byte: an empty tensor still needs a valid pointer.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, data.count * datatype.byteWidth), alignment: 16)
        switch (data, datatype) {
        case (.float(let values), .fp32): write(values.lazy.map { Float($0) }, into: buffer)
        case (.float(let values), .fp64): write(values, into: buffer)
        case (.float(let values), .fp16): write(values.lazy.map { Float16($0) }, into: buffer)
        case (.int(let values), .int8): write(values.lazy.map { Int8(truncatingIfNeeded: $0) }, into: buffer)
        case (.int(let values), .int16): write(values.lazy.map { Int16(truncatingIfNeeded: $0) }, into: buffer)
        case (.int(let values), .int32): write(values.lazy.map { Int32(truncatingIfNeeded: $0) }, into: buffer)
        case (.int(let values), .int64): write(values, into: buffer)
        case (.int(let values), .uint8): write(values.lazy.map { UInt8(truncatingIfNeeded: $0) }, into: buffer)
        case (.int(let values), .uint16): write(values.lazy.map { UInt16(truncatingIfNeeded: $0) }, into: buffer)
        case (.int(let values), .uint32): write(values.lazy.map { UInt32(truncatingIfNeeded: $0) }, into: buffer)
        case (.int(let values), .uint64): write(values.lazy.map { UInt64(truncatingIfNeeded: $0) }, into: buffer)
        case (.bool(let values), .bool): write(values.lazy.map { UInt8($0 ? 1 : 0) }, into: buffer)
        // Validation makes the element family match the declared type; anything else is zeros.
        default: buffer.initializeMemory(as: UInt8.self, repeating: 0)
        }
        return buffer
    }

    private static func write<C: Collection>(_ values: C, into buffer: UnsafeMutableRawBufferPointer) {
        let typed = buffer.bindMemory(to: C.Element.self)
        _ = typed.initialize(from: values)
    }
}

extension TensorDataType {
    /// ONNX's `TensorProto.DataType` number of this type.
    init?(onnxElementType: Int32) {
        switch onnxElementType {
        case 1: self = .fp32
        case 2: self = .uint8
        case 3: self = .int8
        case 4: self = .uint16
        case 5: self = .int16
        case 6: self = .int32
        case 7: self = .int64
        case 8: self = .bytes
        case 9: self = .bool
        case 10: self = .fp16
        case 11: self = .fp64
        case 12: self = .uint32
        case 13: self = .uint64
        default: return nil
        }
    }

    var onnxElementType: Int32 {
        switch self {
        case .fp32: 1
        case .uint8: 2
        case .int8: 3
        case .uint16: 4
        case .int16: 5
        case .int32: 6
        case .int64: 7
        case .bytes: 8
        case .bool: 9
        case .fp16: 10
        case .fp64: 11
        case .uint32: 12
        case .uint64: 13
        }
    }

    /// Bytes per element in the native layout (0 for variable-length `BYTES`).
    public var byteWidth: Int {
        switch self {
        case .bool, .uint8, .int8: 1
        case .uint16, .int16, .fp16: 2
        case .uint32, .int32, .fp32: 4
        case .uint64, .int64, .fp64: 8
        case .bytes: 0
        }
    }
}
