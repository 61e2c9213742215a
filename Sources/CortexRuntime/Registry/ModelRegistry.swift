public import CortexCore
import Foundation
public import Logging
import NIOPosix
import Synchronization

/// The models a server knows, each with its lifecycle state.
///
/// A name may have several versions at once (`scorer:1=...`, `scorer:2=...`): each is an entry of
/// its own, asked for by `/v2/models/{name}/versions/{version}`; a request naming no version goes
/// to the one listed last. Loading a name again (``replace(with:)``, a promotion, the repository's
/// `load`) replaces every version of it.
///
/// Reads are lock-protected dictionary look-ups, cheap enough for every request.
public final class ModelRegistry: Sendable {
    /// Where a model is in its lifecycle.
    public enum State: Sendable {
        /// Being loaded from disk.
        case loading
        /// Loaded, running its warm-up (`warmup.runs` synthetic inferences) before serving.
        case warming(any InferenceModel)
        /// Serving.
        case ready(any InferenceModel)
        /// Could not be loaded; the reason names the file and field.
        case failed(String)

        /// A short word for status pages: `loading`, `ready` or `failed`.
        public var name: String {
            switch self {
            case .loading: "loading"
            case .warming: "warming"
            case .ready: "ready"
            case .failed: "failed"
            }
        }
    }

    /// One registered model.
    public struct Entry: Sendable {
        /// Where the model was loaded from.
        public var source: ModelSource
        /// Its current state.
        public var state: State
        /// The files it was loaded from, as they were then (`nil` for a model registered from memory).
        public var files: ModelFiles?

        /// The version serving (or warming), else the configured one.
        public var version: String? {
            switch state {
            case .ready(let model), .warming(let model): model.metadata.version
            case .loading, .failed: source.version
            }
        }
    }

    /// An entry's place: the model's name and the version its source names (`nil` for one that
    /// names none, whose version is then the file's).
    private struct Key: Hashable {
        var name: String
        var version: String?

        init(name: String, version: String?) {
            self.name = name
            self.version = version
        }

        init(_ source: ModelSource) {
            self.init(name: source.name, version: source.version)
        }
    }

    private struct Storage {
        var order: [Key] = []
        var entries: [Key: Entry] = [:]
        /// Bumped by every ``update(_:_:)``, so a late warm-up cannot overwrite a newer entry.
        var generations: [Key: UInt64] = [:]
        var nextGeneration: UInt64 = 0

        /// The entry a request naming no version gets: the version of `name` listed last.
        func current(_ name: String) -> Entry? {
            order.last { $0.name == name }.flatMap { entries[$0] }
        }

        /// Takes every version of `name` out; a warm-up still running finds another generation.
        mutating func remove(_ name: String) -> [Entry] {
            let keys = order.filter { $0.name == name }
            order.removeAll { $0.name == name }
            nextGeneration += 1
            for key in keys { generations[key] = nextGeneration }
            return keys.compactMap { entries.removeValue(forKey: $0) }
        }
    }

    private let storage = Mutex(Storage())
    private let loader: ModelLoader
    private let logger: Logger

    /// Creates an empty registry.
    public init(loader: ModelLoader = ModelLoader(), logger: Logger) {
        self.loader = loader
        self.logger = logger
    }

    /// Loads every source; a model that fails is recorded as failed and the others still load.
    public func load(_ sources: [ModelSource]) {
        for source in sources {
            load(source)
        }
    }

    /// Loads one source, replacing any model of the same name.
    ///
    /// A model whose manifest asks for warm-up is `warming` when this returns; a thread of its own
    /// runs the synthetic inferences and then makes it `ready` (`MODEL_WARMED`, then `MODEL_READY`).
    @discardableResult
    public func load(_ source: ModelSource) -> State {
        update(source, .loading)
        let state: State
        do {
            let loaded = try loader.loadModel(source)
            return register(loaded.model, source: source, warmupRuns: loaded.warmupRuns, files: loaded.files)
        } catch {
            state = .failed("\(error)")
            logger.error("MODEL_LOAD_FAIL", metadata: ["model": "\(source.name)", "path": "\(source.path)", "reason": "\(error)"])
        }
        update(source, state)
        return state
    }

    /// Registers a loaded model under `source.name`, replacing any model of that name: ready at
    /// once, or `warming` until `warmupRuns` inferences on zeros have run on a thread of their own.
    @discardableResult
    public func register(_ model: any InferenceModel, source: ModelSource, warmupRuns: Int = 0, files: ModelFiles? = nil) -> State {
        guard warmupRuns > 0 else {
            update(source, .ready(model), files: files)
            logReady(model, source: source)
            return .ready(model)
        }
        let generation = update(source, .warming(model), files: files)
        warmUp(model, source: source, runs: warmupRuns, generation: generation)
        return .warming(model)
    }

    private func logReady(_ model: any InferenceModel, source: ModelSource) {
        logger.info(
            "MODEL_READY",
            metadata: ["model": "\(source.name)", "version": "\(model.metadata.version)", "path": "\(source.path)"]
        )
    }

    /// Runs `runs` inferences on zeros shaped like the model's inputs (dynamic dimensions as 1),
    /// off the caller's thread, then marks the model ready if it is still the registered one.
    private func warmUp(_ model: any InferenceModel, source: ModelSource, runs: Int, generation: UInt64) {
        let logger = self.logger
        let thread = Thread { [self] in
            let start = DispatchTime.now().uptimeNanoseconds
            let inputs = model.metadata.inputs.map { $0.zeros() }
            var failure: (any Error)?
            for _ in 0..<runs where failure == nil {
                do { _ = try model.infer(inputs) } catch { failure = error }
            }
            let milliseconds = Double((DispatchTime.now().uptimeNanoseconds - start) / 1000) / 1000
            let next: State
            if let failure {
                next = .failed("warm-up failed: \(failure)")
                logger.error("MODEL_LOAD_FAIL", metadata: ["model": "\(source.name)", "path": "\(source.path)", "reason": "\(failure)"])
            } else {
                next = .ready(model)
                logger.info(
                    "MODEL_WARMED",
                    metadata: [
                        "model": "\(source.name)", "runs": .stringConvertible(runs), "duration_ms": .stringConvertible(milliseconds),
                    ]
                )
                logReady(model, source: source)
            }
            storage.withLock { storage in
                // Only if nothing replaced the model meanwhile.
                let key = Key(source)
                guard storage.generations[key] == generation else { return }
                storage.entries[key]?.state = next
            }
        }
        thread.name = "cortex-warmup-\(source.name)"
        thread.start()
    }

    /// Loads `source` and runs its warm-up off to the side (on NIO's thread pool), then puts it in
    /// under `source.name` in one step, in place of every version of that name. Requests keep going to the model that served until then,
    /// so none fails; those already holding the old model finish on it, and it is freed when the
    /// last of them lets go. A load or warm-up that fails changes nothing.
    ///
    /// - Returns: The model now serving under `source.name`.
    /// - Throws: ``ModelLoadError`` naming the file, or the warm-up's error.
    @discardableResult
    public func replace(with source: ModelSource) async throws -> any InferenceModel {
        let loader = self.loader
        let loaded = try await NIOThreadPool.singleton.runIfActive {
            let loaded = try loader.loadModel(source)
            let inputs = loaded.model.metadata.inputs.map { $0.zeros() }
            for _ in 0..<loaded.warmupRuns { _ = try loaded.model.infer(inputs) }
            return loaded
        }
        storage.withLock { storage in
            let place = storage.order.firstIndex { $0.name == source.name }
            _ = storage.remove(source.name)
            let key = Key(source)
            storage.order.insert(key, at: min(place ?? storage.order.count, storage.order.count))
            storage.entries[key] = Entry(source: source, state: .ready(loaded.model), files: loaded.files)
            storage.generations[key] = storage.nextGeneration
        }
        logReady(loaded.model, source: source)
        return loaded.model
    }

    /// Takes the model of that name out, every version: new requests no longer find it; those
    /// already holding it finish on it, and it is freed when the last lets go (watch
    /// ``InferenceModel/lifetime``).
    ///
    /// - Returns: The entries removed, none when there was no model of that name.
    @discardableResult
    public func unload(named name: String) -> [Entry] {
        let removed = storage.withLock { $0.remove(name) }
        for entry in removed {
            logger.notice(
                "MODEL_UNLOADED", metadata: ["model": "\(name)", "version": "\(entry.version ?? "")", "path": "\(entry.source.path)"])
        }
        return removed
    }

    /// What ``warmUp(named:runs:)`` measured.
    public struct WarmupTimings: Sendable, Equatable {
        public var runs: Int
        /// The first run (where a cold model pays for its first allocations), then the mean of the others.
        public var firstMilliseconds: Double
        public var meanMilliseconds: Double
    }

    /// Runs `runs` inferences on zeros shaped like a serving model's inputs, on NIO's thread pool
    /// (the calling event loop is never blocked), and returns their timings. The model serves
    /// meanwhile: this warms caches and measures, it takes nothing out of service.
    ///
    /// - Throws: ``APIError`` 404 for an unknown model, 503 for one not ready; the model's error.
    public func warmUp(named name: String, runs: Int) async throws -> WarmupTimings {
        let model = try model(named: name)
        return try await NIOThreadPool.singleton.runIfActive {
            let inputs = model.metadata.inputs.map { $0.zeros() }
            var times: [Double] = []
            for _ in 0..<max(1, runs) {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try model.infer(inputs)
                times.append(Double((DispatchTime.now().uptimeNanoseconds - start) / 1000) / 1000)
            }
            let rest = times.dropFirst()
            return WarmupTimings(
                runs: times.count, firstMilliseconds: times[0],
                meanMilliseconds: rest.isEmpty ? times[0] : rest.reduce(0, +) / Double(rest.count))
        }
    }

    /// Every entry (each version of a model its own), in registration order.
    public var entries: [Entry] {
        storage.withLock { storage in storage.order.compactMap { storage.entries[$0] } }
    }

    /// The entry a request for `name` naming no version gets (the version listed last), if registered.
    public func entry(named name: String) -> Entry? {
        storage.withLock { $0.current(name) }
    }

    /// Every version of `name`, in registration order.
    public func versions(named name: String) -> [Entry] {
        storage.withLock { storage in storage.order.filter { $0.name == name }.compactMap { storage.entries[$0] } }
    }

    /// Whether at least one model is ready.
    public var hasReadyModel: Bool {
        storage.withLock { storage in
            storage.entries.values.contains { if case .ready = $0.state { true } else { false } }
        }
    }

    /// The ready model of that name (and version, when given).
    ///
    /// - Throws: ``APIError`` 404 for an unknown name or version, 503 when it is not ready.
    public func model(named name: String, version: String? = nil) throws(APIError) -> any InferenceModel {
        // A version configured by name, else the current entry (whose file may be that version).
        let entry = storage.withLock { storage in
            version.flatMap { storage.entries[Key(name: name, version: $0)] } ?? storage.current(name)
        }
        guard let entry else {
            throw .modelNotFound(name)
        }
        switch entry.state {
        case .ready(let model):
            if let version, version != model.metadata.version, version != entry.source.version {
                throw .modelNotFound(name, version: version)
            }
            return model
        case .loading:
            throw .modelNotReady(name, reason: "loading")
        case .warming:
            throw .modelNotReady(name, reason: "warming up")
        case .failed(let reason):
            throw .modelNotReady(name, reason: "failed to load (\(reason))")
        }
    }

    @discardableResult
    private func update(_ source: ModelSource, _ state: State, files: ModelFiles? = nil) -> UInt64 {
        storage.withLock { storage in
            let key = Key(source)
            if storage.entries[key] == nil {
                storage.order.append(key)
            }
            storage.entries[key] = Entry(source: source, state: state, files: files)
            storage.nextGeneration += 1
            storage.generations[key] = storage.nextGeneration
            return storage.nextGeneration
        }
    }
}
