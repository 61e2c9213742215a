import Foundation
import Synchronization
import Yams

/// Loads a model from disk into an ``InferenceModel``.
///
/// A model is a file (`lead.json`, `vA.onnx`) or a directory holding a `model.yaml` manifest; a
/// file may have its manifest next to it under the same stem (`vA.yaml` for `vA.onnx`):
/// ```yaml
/// version: "1.0.0"
/// format: onnx            # or xgboost_json; by default from the file's extension
/// file: model.onnx        # in a directory; default model.onnx or model.json
/// description: "handwritten digits"
/// onnx: {intra_op_threads: 1, inter_op_threads: 1, optimization: all}
/// image: {color: gray, scale: 0.00392156862745098, mean: [0], std: [1], labels: ["0", "1"]}
/// ```
public final class ModelLoader: Sendable {
    struct Manifest: Decodable {
        var version: String?
        var format: String?
        var file: String?
        var description: String?
        var onnx: ONNXSettings?
        var image: ImagePreprocessing?
        var batching: BatchingSettings?
        var warmup: WarmupSettings?

        struct WarmupSettings: Decodable {
            var runs: Int
        }

        struct BatchingSettings: Decodable {
            var maxBatchSize: Int
            var maxQueueDelayUs: Int?
            var maxQueue: Int?

            enum CodingKeys: String, CodingKey {
                case maxBatchSize = "max_batch_size"
                case maxQueueDelayUs = "max_queue_delay_us"
                case maxQueue = "max_queue"
            }
        }

        struct ONNXSettings: Decodable {
            var intraOpThreads: Int?
            var interOpThreads: Int?
            var optimization: String?

            enum CodingKeys: String, CodingKey {
                case intraOpThreads = "intra_op_threads"
                case interOpThreads = "inter_op_threads"
                case optimization
            }
        }
    }

    /// Where ONNX Runtime is: a path from the configuration, or found at first use.
    let onnxLibraryPath: String?
    private let onnxLibrary = Mutex<Result<ONNXRuntimeLibrary, ONNXRuntimeLibrary.LoadError>?>(nil)

    /// Told of every dynamic batch a loaded model runs: the model's name and what ran.
    let onExecution: @Sendable (String, DynamicBatcher.Execution) -> Void

    /// Creates a loader; `onnxLibrary` is `onnx.library` / `ORT_LIBRARY_PATH` when configured.
    public init(
        onnxLibrary: String? = nil,
        onExecution: @escaping @Sendable (String, DynamicBatcher.Execution) -> Void = { _, _ in }
    ) {
        self.onnxLibraryPath = onnxLibrary
        self.onExecution = onExecution
    }

    /// ONNX Runtime, located and opened on first use; the same answer afterwards.
    public var onnxRuntime: Result<ONNXRuntimeLibrary, ONNXRuntimeLibrary.LoadError> {
        onnxLibrary.withLock { cached in
            if let cached { return cached }
            let result = ONNXRuntimeLibrary.locate(configured: onnxLibraryPath).flatMap { ONNXRuntimeLibrary.open(path: $0) }
            cached = result
            return result
        }
    }

    /// A loaded model and how many warm-up runs its manifest asks for.
    public struct Loaded: Sendable {
        public var model: any InferenceModel
        /// `warmup.runs`: synthetic inferences before the model serves (0: none).
        public var warmupRuns: Int
        /// The model's file and manifest as they were when read.
        public var files: ModelFiles
    }

    /// Loads the model a source points at.
    ///
    /// - Throws: ``ModelLoadError`` naming the file (and field) at fault.
    public func load(_ source: ModelSource) throws -> any InferenceModel {
        try loadModel(source).model
    }

    /// Loads the model a source points at, with its warm-up setting.
    ///
    /// - Throws: ``ModelLoadError`` naming the file (and field) at fault.
    public func loadModel(_ source: ModelSource) throws -> Loaded {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source.path, isDirectory: &isDirectory) else {
            throw ModelLoadError(path: source.path, reason: "no such file or directory")
        }
        var file = source.path
        var manifest = Manifest()
        var manifestPath: String?
        if isDirectory.boolValue {
            let path = (source.path as NSString).appendingPathComponent("model.yaml")
            if FileManager.default.fileExists(atPath: path) {
                manifest = try readManifest(path)
                manifestPath = path
            }
            let defaultFile =
                FileManager.default.fileExists(atPath: (source.path as NSString).appendingPathComponent("model.onnx"))
                ? "model.onnx" : "model.json"
            file = (source.path as NSString).appendingPathComponent(manifest.file ?? defaultFile)
        } else {
            let sidecar = (source.path as NSString).deletingPathExtension + ".yaml"
            if sidecar != source.path, FileManager.default.fileExists(atPath: sidecar) {
                manifest = try readManifest(sidecar)
                manifestPath = sidecar
            }
        }
        let version = source.version ?? manifest.version ?? "1"
        let warmupRuns = manifest.warmup?.runs ?? 0
        guard (0...10_000).contains(warmupRuns) else {
            throw ModelLoadError(path: file, field: "warmup.runs", reason: "must be from 0 to 10000")
        }
        // Before the model is read: a file changed while it loads counts as changed.
        let files = ModelFiles(paths: [file] + (manifestPath.map { [$0] } ?? []))
        return Loaded(
            model: try load(
                file: file, format: manifest.format ?? Self.format(ofFile: file), version: version, manifest: manifest, source: source),
            warmupRuns: warmupRuns, files: files)
    }

    private func load(file: String, format: String, version: String, manifest: Manifest, source: ModelSource) throws -> any InferenceModel {
        switch format {
        case "xgboost_json":
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ModelLoadError(path: file, reason: "cannot read file")
            }
            let ensemble = try TreeEnsemble(xgboostJSON: data, path: file)
            return try batched(TreeEnsembleModel(name: source.name, version: version, ensemble: ensemble), manifest.batching, path: file)
        case "onnx":
            let library: ONNXRuntimeLibrary
            switch onnxRuntime {
            case .success(let opened): library = opened
            case .failure(let error): throw ModelLoadError(path: file, reason: error.description)
            }
            let model = try ONNXModel(
                name: source.name,
                version: version,
                path: file,
                library: library,
                options: try sessionOptions(manifest.onnx, path: file),
                image: manifest.image,
                description: manifest.description
            )
            return try batched(model, manifest.batching, path: file)
        default:
            throw ModelLoadError(path: file, field: "format", reason: "unknown model format '\(format)'; expected xgboost_json or onnx")
        }
    }

    /// `model` behind a dynamic batcher when the manifest asks for one (`max_batch_size` over 1).
    private func batched(_ model: any InferenceModel, _ settings: Manifest.BatchingSettings?, path: String) throws -> any InferenceModel {
        guard let settings, settings.maxBatchSize > 1 else { return model }
        guard settings.maxBatchSize <= 65_536 else {
            throw ModelLoadError(path: path, field: "batching.max_batch_size", reason: "must be from 1 to 65536")
        }
        let delay = settings.maxQueueDelayUs ?? 0
        guard (0...1_000_000).contains(delay) else {
            throw ModelLoadError(path: path, field: "batching.max_queue_delay_us", reason: "must be from 0 to 1000000")
        }
        let queue = settings.maxQueue ?? 1024
        guard (1...1_000_000).contains(queue) else {
            throw ModelLoadError(path: path, field: "batching.max_queue", reason: "must be from 1 to 1000000")
        }
        let name = model.metadata.name
        let onExecution = self.onExecution
        return try BatchedModel(
            base: model,
            options: BatchingOptions(maxBatchSize: settings.maxBatchSize, maxQueueDelayMicroseconds: delay, maxQueue: queue),
            path: path,
            onExecution: { onExecution(name, $0) }
        )
    }

    private func sessionOptions(_ settings: Manifest.ONNXSettings?, path: String) throws -> ONNXSessionOptions {
        var options = ONNXSessionOptions()
        guard let settings else { return options }
        if let threads = settings.intraOpThreads {
            guard (1...256).contains(threads) else {
                throw ModelLoadError(path: path, field: "onnx.intra_op_threads", reason: "must be from 1 to 256")
            }
            options.intraOpThreads = threads
        }
        if let threads = settings.interOpThreads {
            guard (1...256).contains(threads) else {
                throw ModelLoadError(path: path, field: "onnx.inter_op_threads", reason: "must be from 1 to 256")
            }
            options.interOpThreads = threads
        }
        if let name = settings.optimization {
            guard let level = ONNXSessionOptions.Optimization(rawValue: name) else {
                throw ModelLoadError(path: path, field: "onnx.optimization", reason: "must be one of disable, basic, extended, all")
            }
            options.optimization = level
        }
        return options
    }

    private static func format(ofFile file: String) -> String {
        if file.hasSuffix(".onnx") { return "onnx" }
        if file.hasSuffix(".json") { return "xgboost_json" }
        return (file as NSString).pathExtension
    }

    private func readManifest(_ path: String) throws -> Manifest {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ModelLoadError(path: path, reason: "cannot read file")
        }
        do {
            return try YAMLDecoder().decode(Manifest.self, from: text)
        } catch {
            throw ModelLoadError(path: path, reason: "not a valid model manifest: \(error)")
        }
    }
}
