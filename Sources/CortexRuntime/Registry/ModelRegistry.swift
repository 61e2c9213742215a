public import CortexCore
public import Logging
import Synchronization

/// The models a server knows, each with its lifecycle state.
///
/// Reads are lock-protected dictionary look-ups, cheap enough for every request.
public final class ModelRegistry: Sendable {
    /// Where a model is in its lifecycle.
    public enum State: Sendable {
        /// Being loaded from disk.
        case loading
        /// Serving.
        case ready(any InferenceModel)
        /// Could not be loaded; the reason names the file and field.
        case failed(String)

        /// A short word for status pages: `loading`, `ready` or `failed`.
        public var name: String {
            switch self {
            case .loading: "loading"
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
    }

    private struct Storage {
        var order: [String] = []
        var entries: [String: Entry] = [:]
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
    @discardableResult
    public func load(_ source: ModelSource) -> State {
        update(source, .loading)
        let state: State
        do {
            let model = try loader.load(source)
            state = .ready(model)
            logger.info(
                "MODEL_READY",
                metadata: ["model": "\(source.name)", "version": "\(model.metadata.version)", "path": "\(source.path)"]
            )
        } catch {
            state = .failed("\(error)")
            logger.error("MODEL_LOAD_FAIL", metadata: ["model": "\(source.name)", "path": "\(source.path)", "reason": "\(error)"])
        }
        update(source, state)
        return state
    }

    /// Every entry, in registration order.
    public var entries: [Entry] {
        storage.withLock { storage in storage.order.compactMap { storage.entries[$0] } }
    }

    /// The entry for a name, if registered.
    public func entry(named name: String) -> Entry? {
        storage.withLock { $0.entries[name] }
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
        guard let entry = entry(named: name) else {
            throw .modelNotFound(name)
        }
        switch entry.state {
        case .ready(let model):
            if let version, version != model.metadata.version {
                throw .modelNotFound(name, version: version)
            }
            return model
        case .loading:
            throw .modelNotReady(name, reason: "loading")
        case .failed(let reason):
            throw .modelNotReady(name, reason: "failed to load (\(reason))")
        }
    }

    private func update(_ source: ModelSource, _ state: State) {
        storage.withLock { storage in
            if storage.entries[source.name] == nil {
                storage.order.append(source.name)
            }
            storage.entries[source.name] = Entry(source: source, state: state)
        }
    }
}
