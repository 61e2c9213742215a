import CortexCore
public import CortexRuntime
import Foundation
public import Hummingbird
import Logging

/// The Open Inference Protocol's model repository extension, admin-only (behind
/// ``AdminAuthMiddleware``): load, reload and unload models from `MODEL_REPOSITORY` without a restart.
///
/// - `POST /v2/repository/index` (optional `{"ready": true}`): every model loaded or in the
///   repository, `[{"name", "version", "state", "reason"}]`, states as Triton names them (`READY`,
///   `LOADING`, `UNAVAILABLE`).
/// - `POST /v2/repository/models/{model}/load`: `{model}` (a directory with `model.yaml` or
///   `model.json`, `{model}.onnx` or `{model}.json` in the repository) loaded and warmed up off to the side, then put in at once:
///   requests to a model of that name already serving go on to the old copy until then, none fails.
/// - `POST /v2/repository/models/{model}/unload`: new requests no longer find it (404); the answer
///   comes once the requests already running on it have finished and its memory is freed (at
///   most `DRAIN_TIMEOUT_S`). A variant the A/B split sends requests to is refused (409).
public struct ModelRepositoryController<Context: AuthenticatedContext>: Sendable {
    let registry: ModelRegistry
    let directory: String
    /// Every endpoint's split, to refuse unloading a model one of them sends requests to.
    let traffic: [TrafficControl]
    let maxBodyBytes: Int
    /// The longest an unload waits for the model's requests to finish.
    let drainTimeout: Duration

    public init(registry: ModelRegistry, directory: String, traffic: [TrafficControl], maxBodyBytes: Int, drainTimeout: Duration) {
        self.registry = registry
        self.directory = directory
        self.traffic = traffic
        self.maxBodyBytes = maxBodyBytes
        self.drainTimeout = drainTimeout
    }

    public func addRoutes(to router: some RouterMethods<Context>) {
        router.post("/v2/repository/index") { request, _ in try await self.index(request) }
        router.post("/v2/repository/models/{model}/load") { _, context in try await self.load(context) }
        router.post("/v2/repository/models/{model}/unload") { _, context in try await self.unload(context) }
    }

    func index(_ request: Request) async throws -> Response {
        let buffer = try await request.collectBody(limit: maxBodyBytes)
        var readyOnly = false
        if buffer.readableBytes > 0 {
            let body = try JSONValue.parse(buffer)
            _ = try body.object(at: "")
            if let ready = body["ready"] {
                guard case .bool(let flag) = ready else { throw APIError.invalidInput("'ready' must be true or false") }
                readyOnly = flag
            }
        }
        let loaded = registry.entries
        let names = Set(loaded.map(\.source.name))
        var json = JSONWriter(capacity: 256)
        json.beginArray()
        for entry in loaded {
            let (state, reason): (String, String) =
                switch entry.state {
                case .ready: ("READY", "")
                case .loading, .warming: ("LOADING", entry.state.name)
                case .failed(let why): ("UNAVAILABLE", why)
                }
            if readyOnly && state != "READY" { continue }
            Self.write(name: entry.source.name, version: entry.version, state: state, reason: reason, to: &json)
        }
        if !readyOnly {
            for name in repositoryNames() where !names.contains(name) {
                Self.write(name: name, version: nil, state: "UNAVAILABLE", reason: "unloaded", to: &json)
            }
        }
        json.endArray()
        return Response.json(.ok, json.text)
    }

    static func write(name: String, version: String?, state: String, reason: String, to json: inout JSONWriter) {
        json.beginObject()
        json.member("name", name)
        if let version { json.member("version", version) }
        json.member("state", state)
        json.member("reason", reason)
        json.endObject()
    }

    /// The models in the repository directory: its subdirectories and `.onnx`/`.json` files, by name.
    func repositoryNames() -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var names: Set<String> = []
        for file in files where !file.hasPrefix(".") {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory + "/" + file, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                if Self.isModelDirectory(directory + "/" + file) { names.insert(file) }
            } else if file.hasSuffix(".onnx") || file.hasSuffix(".json") {
                names.insert(ModelSource(path: file).name)
            }
        }
        return names.filter { CortexConfiguration.isValidModelName($0) && !$0.hasPrefix(".") }.sorted()
    }

    /// A model's directory holds its manifest (`model.yaml`) or its XGBoost model (`model.json`).
    static func isModelDirectory(_ path: String) -> Bool {
        ["model.yaml", "model.json"].contains { FileManager.default.fileExists(atPath: path + "/" + $0) }
    }

    /// Where `name` is in the repository: its directory, else `name.onnx`, else `name.json`.
    func source(of name: String) throws(APIError) -> ModelSource {
        guard CortexConfiguration.isValidModelName(name), !name.hasPrefix(".") else {
            throw APIError.invalidInput("a model name has letters, digits, '-', '_' and '.'; got '\(name)'")
        }
        for candidate in [name, name + ".onnx", name + ".json"] {
            let path = directory + "/" + candidate
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue == (candidate == name)
            else { continue }
            if candidate != name || Self.isModelDirectory(path) { return ModelSource(name: name, path: path) }
        }
        throw APIError(
            status: 404, code: "model_not_found",
            message: "no model '\(name)' in the repository \(directory) (a directory, \(name).onnx or \(name).json)")
    }

    func load(_ context: Context) async throws -> Response {
        let name = try context.parameters.require("model")
        let source = try source(of: name)
        do {
            let model = try await registry.replace(with: source)
            context.logger.notice(
                "MODEL_LOADED", metadata: ["model": "\(name)", "path": "\(source.path)", "version": "\(model.metadata.version)"])
        } catch {
            context.logger.error("MODEL_LOAD_FAIL", metadata: ["model": "\(name)", "path": "\(source.path)", "reason": "\(error)"])
            throw APIError(status: 422, code: "model_load_failed", message: "model '\(name)' could not be loaded: \(error)")
        }
        return Response.json(.ok, "{}")
    }

    /// Watches an object without keeping it alive.
    final class WeakReference: @unchecked Sendable {
        weak var object: AnyObject?
        init(_ object: AnyObject?) { self.object = object }
    }

    /// Weak references to the removed versions' memory; the entries themselves are let go on
    /// return, so only the requests still running on a model keep it alive.
    static func lifetimes(of entries: [ModelRegistry.Entry]) -> [WeakReference] {
        entries.map { entry in
            switch entry.state {
            case .ready(let model), .warming(let model): WeakReference(model.lifetime)
            case .loading, .failed: WeakReference(nil)
            }
        }
    }

    func unload(_ context: Context) async throws -> Response {
        let name = try context.parameters.require("model")
        for control in traffic {
            guard let split = control.state.split, split.variants.contains(where: { $0.model == name && $0.weight > 0 }) else { continue }
            throw APIError(
                status: 409, code: "model_in_use",
                message: "model '\(name)' serves a share of \(control.endpoint); set its weight to 0 (POST /admin/config) first")
        }
        let lifetimes = Self.lifetimes(of: registry.unload(named: name))
        guard !lifetimes.isEmpty else { throw APIError.modelNotFound(name) }
        let deadline = ContinuousClock.now + drainTimeout
        while lifetimes.contains(where: { $0.object != nil }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        let drained = lifetimes.allSatisfy { $0.object == nil }
        context.logger.notice("MODEL_DRAINED", metadata: ["model": "\(name)", "drained": "\(drained)"])
        return Response.json(.ok, drained ? "{}" : #"{"drained":false}"#)
    }
}
