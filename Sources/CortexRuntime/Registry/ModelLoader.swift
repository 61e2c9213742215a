import Foundation
import Yams

/// Loads a model from disk into an ``InferenceModel``.
///
/// A directory may hold a `model.yaml` manifest:
/// ```yaml
/// version: "1.0.0"
/// format: xgboost_json   # the only format this build loads natively
/// file: model.json
/// ```
/// Without a manifest the directory must hold `model.json`.
public struct ModelLoader: Sendable {
    struct Manifest: Decodable {
        var version: String?
        var format: String?
        var file: String?
    }

    /// Creates a loader.
    public init() {}

    /// Loads the model a source points at.
    ///
    /// - Throws: ``ModelLoadError`` naming the file (and field) at fault.
    public func load(_ source: ModelSource) throws -> any InferenceModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source.path, isDirectory: &isDirectory) else {
            throw ModelLoadError(path: source.path, reason: "no such file or directory")
        }
        var file = source.path
        var manifest = Manifest()
        if isDirectory.boolValue {
            let manifestPath = (source.path as NSString).appendingPathComponent("model.yaml")
            if FileManager.default.fileExists(atPath: manifestPath) {
                manifest = try readManifest(manifestPath)
            }
            file = (source.path as NSString).appendingPathComponent(manifest.file ?? "model.json")
        }
        let version = source.version ?? manifest.version ?? "1"
        let format = manifest.format ?? Self.format(ofFile: file)
        switch format {
        case "xgboost_json":
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ModelLoadError(path: file, reason: "cannot read file")
            }
            let ensemble = try TreeEnsemble(xgboostJSON: data, path: file)
            return TreeEnsembleModel(name: source.name, version: version, ensemble: ensemble)
        case "onnx":
            throw ModelLoadError(path: file, reason: "ONNX models need the ONNX Runtime backend, which this build does not include yet")
        default:
            throw ModelLoadError(path: file, field: "format", reason: "unknown model format '\(format)'; expected xgboost_json")
        }
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
