public import CortexCore

/// Serves an ONNX model through ONNX Runtime.
///
/// The signature comes from the session: input and output names, element types, and shapes with
/// dynamic dimensions as `-1`. Requests are validated against it before `Run`.
public struct ONNXModel: InferenceModel {
    public let metadata: ModelMetadata
    /// How images are turned into this model's input, when it classifies images.
    public let image: ImagePreprocessing?
    let session: ONNXSession
    public var lifetime: AnyObject? { session }

    /// Loads `path` with ONNX Runtime.
    ///
    /// - Throws: ``ModelLoadError`` carrying ONNX Runtime's reason.
    public init(
        name: String,
        version: String,
        path: String,
        library: ONNXRuntimeLibrary,
        options: ONNXSessionOptions = ONNXSessionOptions(),
        image: ImagePreprocessing? = nil,
        description: String? = nil
    ) throws {
        do {
            session = try ONNXSession(library: library, path: path, options: options)
        } catch {
            throw ModelLoadError(path: path, reason: "ONNX Runtime cannot load it: \(error.message)")
        }
        var properties = [
            "onnxruntime_version": library.version,
            "intra_op_threads": String(options.intraOpThreads),
            "inter_op_threads": String(options.interOpThreads),
            "optimization": options.optimization.rawValue,
        ]
        if let description { properties["description"] = description }
        metadata = ModelMetadata(
            name: name,
            version: version,
            platform: "onnxruntime_onnx",
            inputs: session.inputs,
            outputs: session.outputs,
            properties: properties
        )
        var image = image
        try image?.check(against: metadata, path: path)
        self.image = image
    }

    public func infer(_ inputs: [Tensor]) throws -> [Tensor] {
        try session.run(inputs)
    }

    /// Nanoseconds of each of `iterations` bare ONNX Runtime `Run` calls on `inputs`, without
    /// Cortex's conversions: `cortex models bench` and `bench/onnx.sh` measure against it.
    public func timeRuns(_ inputs: [Tensor], iterations: Int) throws -> [UInt64] {
        try session.timeRuns(inputs, iterations: iterations)
    }
}
