/// The functions of ONNX Runtime's C API that Cortex uses, read from the `OrtApi` table.
///
/// The table is an append-only array of C function pointers: a function's slot index never
/// changes between versions (`shared/reference/onnxruntime-c-api.md` lists the ones used here).
/// Every `OrtStatus*` result is checked by ``check(_:)``: NULL is success.
struct ONNXRuntimeAPI: @unchecked Sendable {
    typealias Status = OpaquePointer?
    typealias Pointer = OpaquePointer?

    let createEnv: @convention(c) (Int32, UnsafePointer<CChar>, UnsafeMutablePointer<Pointer>) -> Status
    let createSession: @convention(c) (Pointer, UnsafePointer<CChar>, Pointer, UnsafeMutablePointer<Pointer>) -> Status
    let run:
        @convention(c) (
            Pointer, Pointer, UnsafePointer<UnsafePointer<CChar>?>, UnsafePointer<Pointer>, Int, UnsafePointer<UnsafePointer<CChar>?>, Int,
            UnsafeMutablePointer<Pointer>
        ) -> Status
    let createSessionOptions: @convention(c) (UnsafeMutablePointer<Pointer>) -> Status
    let setSessionGraphOptimizationLevel: @convention(c) (Pointer, Int32) -> Status
    let setIntraOpNumThreads: @convention(c) (Pointer, Int32) -> Status
    let setInterOpNumThreads: @convention(c) (Pointer, Int32) -> Status
    let addSessionConfigEntry: @convention(c) (Pointer, UnsafePointer<CChar>, UnsafePointer<CChar>) -> Status
    let sessionGetInputCount: @convention(c) (Pointer, UnsafeMutablePointer<Int>) -> Status
    let sessionGetOutputCount: @convention(c) (Pointer, UnsafeMutablePointer<Int>) -> Status
    let sessionGetInputTypeInfo: @convention(c) (Pointer, Int, UnsafeMutablePointer<Pointer>) -> Status
    let sessionGetOutputTypeInfo: @convention(c) (Pointer, Int, UnsafeMutablePointer<Pointer>) -> Status
    let sessionGetInputName: @convention(c) (Pointer, Int, Pointer, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Status
    let sessionGetOutputName: @convention(c) (Pointer, Int, Pointer, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Status
    let createTensorAsOrtValue: @convention(c) (Pointer, UnsafePointer<Int64>, Int, Int32, UnsafeMutablePointer<Pointer>) -> Status
    let fillStringTensor: @convention(c) (Pointer, UnsafePointer<UnsafePointer<CChar>?>, Int) -> Status
    let getStringTensorDataLength: @convention(c) (Pointer, UnsafeMutablePointer<Int>) -> Status
    let getStringTensorContent: @convention(c) (Pointer, UnsafeMutableRawPointer?, Int, UnsafeMutablePointer<Int>, Int) -> Status
    let createTensorWithDataAsOrtValue:
        @convention(c) (Pointer, UnsafeMutableRawPointer, Int, UnsafePointer<Int64>, Int, Int32, UnsafeMutablePointer<Pointer>) -> Status
    let getTensorMutableData: @convention(c) (Pointer, UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Status
    let castTypeInfoToTensorInfo: @convention(c) (Pointer, UnsafeMutablePointer<Pointer>) -> Status
    let getTensorElementType: @convention(c) (Pointer, UnsafeMutablePointer<Int32>) -> Status
    let getDimensionsCount: @convention(c) (Pointer, UnsafeMutablePointer<Int>) -> Status
    let getDimensions: @convention(c) (Pointer, UnsafeMutablePointer<Int64>, Int) -> Status
    let getTensorShapeElementCount: @convention(c) (Pointer, UnsafeMutablePointer<Int>) -> Status
    let getTensorTypeAndShape: @convention(c) (Pointer, UnsafeMutablePointer<Pointer>) -> Status
    let createCpuMemoryInfo: @convention(c) (Int32, Int32, UnsafeMutablePointer<Pointer>) -> Status
    let allocatorFree: @convention(c) (Pointer, UnsafeMutableRawPointer?) -> Status
    let getAllocatorWithDefaultOptions: @convention(c) (UnsafeMutablePointer<Pointer>) -> Status
    let getErrorCode: @convention(c) (Pointer) -> Int32
    let getErrorMessage: @convention(c) (Pointer) -> UnsafePointer<CChar>?
    let releaseEnv: @convention(c) (Pointer) -> Void
    let releaseStatus: @convention(c) (Pointer) -> Void
    let releaseMemoryInfo: @convention(c) (Pointer) -> Void
    let releaseSession: @convention(c) (Pointer) -> Void
    let releaseValue: @convention(c) (Pointer) -> Void
    let releaseTypeInfo: @convention(c) (Pointer) -> Void
    let releaseTensorTypeAndShapeInfo: @convention(c) (Pointer) -> Void
    let releaseSessionOptions: @convention(c) (Pointer) -> Void

    init(table: UnsafeRawPointer) {
        func slot<F>(_ index: Int, as type: F.Type = F.self) -> F {
            unsafeBitCast(table.load(fromByteOffset: index * MemoryLayout<UnsafeRawPointer>.stride, as: UnsafeRawPointer.self), to: F.self)
        }
        getErrorCode = slot(1)
        getErrorMessage = slot(2)
        createEnv = slot(3)
        createSession = slot(7)
        run = slot(9)
        createSessionOptions = slot(10)
        setSessionGraphOptimizationLevel = slot(23)
        setIntraOpNumThreads = slot(24)
        setInterOpNumThreads = slot(25)
        sessionGetInputCount = slot(30)
        sessionGetOutputCount = slot(31)
        sessionGetInputTypeInfo = slot(33)
        sessionGetOutputTypeInfo = slot(34)
        sessionGetInputName = slot(36)
        sessionGetOutputName = slot(37)
        createTensorAsOrtValue = slot(48)
        createTensorWithDataAsOrtValue = slot(49)
        fillStringTensor = slot(52)
        getStringTensorDataLength = slot(53)
        getStringTensorContent = slot(54)
        getTensorMutableData = slot(51)
        castTypeInfoToTensorInfo = slot(55)
        getTensorElementType = slot(60)
        getDimensionsCount = slot(61)
        getDimensions = slot(62)
        getTensorShapeElementCount = slot(64)
        getTensorTypeAndShape = slot(65)
        createCpuMemoryInfo = slot(69)
        allocatorFree = slot(76)
        getAllocatorWithDefaultOptions = slot(78)
        releaseEnv = slot(92)
        releaseStatus = slot(93)
        releaseMemoryInfo = slot(94)
        releaseSession = slot(95)
        releaseValue = slot(96)
        releaseTypeInfo = slot(98)
        releaseTensorTypeAndShapeInfo = slot(99)
        releaseSessionOptions = slot(100)
        // Counted in onnxruntime_c_api.h (FillStringTensorElement is 129) and checked on the
        // library: a second call with the same key logs ONNX Runtime's "overriding" warning.
        addSessionConfigEntry = slot(130)
    }

    /// Turns a non-NULL status into an error (copying its message) and releases it.
    func check(_ status: Status) throws(ONNXRuntimeError) {
        guard let status else { return }
        let code = getErrorCode(status)
        let message = getErrorMessage(status).map { String(cString: $0) } ?? "unknown error"
        releaseStatus(status)
        throw ONNXRuntimeError(code: Int(code), message: message)
    }
}

/// An error ONNX Runtime reported.
public struct ONNXRuntimeError: Error, CustomStringConvertible, Sendable, Equatable {
    /// `OrtErrorCode`: 2 invalid argument, 3 no such file, 7 invalid protobuf, ...
    public var code: Int
    /// ONNX Runtime's message.
    public var message: String

    public var description: String { message }
}
