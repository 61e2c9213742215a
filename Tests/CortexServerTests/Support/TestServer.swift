import CortexRuntime
import CortexServer
import CortexStore
import CortexTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import Synchronization

/// Paths in the repository, found from this file.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ relative: String) -> String {
        root.appendingPathComponent(relative).path
    }

    static var leadScoring: String { path("models/lead-scoring") }
    /// The A/B image service's two bundled image classifiers.
    static var imageModels: [ModelSource] {
        [ModelSource(name: "vA", path: path("models/vA.onnx")), ModelSource(name: "vB", path: path("models/vB.onnx"))]
    }
}

/// A fresh temporary directory, removed by `remove()`.
struct TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "cortex-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let target = file(name)
        try FileManager.default.createDirectory(
            atPath: (target as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        try text.write(toFile: target, atomically: true, encoding: .utf8)
        return target
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Records every log event so tests can assert on events, fields and what must never be logged.
final class LogRecorder: Sendable {
    struct Event: Sendable {
        var level: Logger.Level
        var name: String
        var metadata: [String: String]
    }

    private let storage = Mutex<[Event]>([])

    var events: [Event] { storage.withLock { $0 } }

    func events(named name: String) -> [Event] { events.filter { $0.name == name } }

    func append(_ event: Event) { storage.withLock { $0.append(event) } }

    func logger(level: Logger.Level = .trace) -> Logger {
        Logger(label: "test") { _ in RecordingHandler(recorder: self, logLevel: level) }
    }

    /// Everything logged, as one text, for "never appears" assertions.
    var allText: String {
        events.map { "\($0.name) \($0.metadata)" }.joined(separator: "\n")
    }

    struct RecordingHandler: LogHandler {
        let recorder: LogRecorder
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata
            merged.merge(event.metadata ?? [:]) { _, new in new }
            recorder.append(
                Event(level: event.level, name: event.message.description, metadata: merged.mapValues { "\($0)" })
            )
        }
    }
}

/// What `POST /admin/reload-auth` finds when it reads the configuration again.
struct ConfigurationChange: Sendable {
    var apply: @Sendable (CortexConfiguration) -> CortexConfiguration
}

/// A Cortex application on a temporary database, with the bundled model unless told otherwise.
struct TestServer: Sendable {
    let directory: TemporaryDirectory
    let dependencies: ServerDependencies
    let logs: LogRecorder
    let logLevel: Logger.Level
    /// The PostgreSQL database `make` created, dropped when `test` ends; `nil` for SQLite, or for a
    /// server put on another server's database (which that server drops).
    let createdDatabase: String?
    /// The store's writer (and PostgreSQL's pool), running until `test` ends.
    let storeRunner: Task<Void, Never>

    /// Which database a test server uses.
    enum Database: String, CaseIterable, CustomStringConvertible, Sendable {
        /// A file in the test's temporary directory.
        case sqlite
        /// A fresh database on the test cluster, dropped afterwards.
        case postgres
        var description: String { rawValue }
    }

    static func make(
        models: [ModelSource] = [ModelSource(path: Repository.leadScoring)],
        logLevel: Logger.Level = .trace,
        database: Database = .sqlite,
        reload: ConfigurationChange? = nil,
        clock: ManualClock? = nil,
        configure: (inout CortexConfiguration) -> Void = { _ in }
    ) async throws -> TestServer {
        let directory = try TemporaryDirectory()
        var configuration = CortexConfiguration()
        switch database {
        case .sqlite: configuration.database = .sqlite(path: directory.file("cortex.db"))
        case .postgres: configuration.database = .postgres(url: try await PostgresTestServer.createDatabase())
        }
        let created = configuration.database
        configuration.models = models
        configuration.readiness.minFreeDiskMB = 1
        // Most suites test other things; the authentication suite turns keys back on.
        configuration.auth.requireAPIKey = false
        configuration.auth.demo = .off
        configure(&configuration)
        var createdDatabase: String?
        if case .postgres(let url) = created {
            if configuration.database == created { createdDatabase = url } else { try? await PostgresTestServer.dropDatabase(url) }
        }
        let logs = LogRecorder()
        let loaded = configuration
        let now: @Sendable () -> Int64
        if let clock {
            now = { clock.now }
        } else {
            now = LocalRateLimiter.monotonicNanoseconds
        }
        let prometheus = PrometheusCollectorRegistry()
        let factory = ServerDependencies.metricsFactory(prometheus)
        let logger = logs.logger(level: logLevel)
        let store: StateStore
        // The server holds its store in a scope (StateStore.withOpened); a test server outlives
        // `make`, so the store runs in a task of its own until `test` ends.
        switch configuration.database {
        case .sqlite(let path):
            store = try await StateStore.openSQLite(path: path, metrics: factory, logger: logger)
        case .postgres(let url):
            store = try StateStore.connectPostgres(url: url, metrics: factory, logger: logger)
        }
        let storeRunner = Task { await store.run() }
        try await store.migrate()
        let dependencies = try await ServerDependencies.open(
            configuration: configuration,
            store: store,
            prometheus: prometheus,
            logger: logger,
            reload: reload.map { change in { @Sendable in change.apply(loaded) } },
            clock: now
        )
        // Models with warm-up runs serve once it is done: wait for it, so tests start on ready models.
        let deadline = ContinuousClock.now + .seconds(60)
        while dependencies.registry.entries.contains(where: { $0.state.name == "warming" }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        return TestServer(
            directory: directory, dependencies: dependencies, logs: logs, logLevel: logLevel, createdDatabase: createdDatabase,
            storeRunner: storeRunner)
    }

    /// Runs `body` against the router in process, then closes the database and removes the directory.
    ///
    /// - Parameter live: Serve on a real loopback port (the client's `port`), for tests that read
    ///   a streamed answer as it comes.
    func test<Value: Sendable>(
        live: Bool = false,
        addingRoutes extraRoutes: (Router<CortexRequestContext>) -> Void = { _ in },
        _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Value
    ) async throws -> Value {
        let router = buildRouter(dependencies)
        extraRoutes(router)
        // The same services `cortex serve` runs beside the server, stopped when the test ends.
        let application = Application(router: router, services: dependencies.services, logger: logs.logger(level: logLevel))
        do {
            let value = try await application.test(live ? .live : .router, body)
            await cleanUp()
            return value
        } catch {
            await cleanUp()
            throw error
        }
    }

    private func cleanUp() async {
        await dependencies.store.close()
        await storeRunner.value
        directory.remove()
        if let createdDatabase {
            try? await PostgresTestServer.dropDatabase(createdDatabase)
        }
    }
}

/// A monotonic clock the test moves by hand, for rate limits.
final class ManualClock: Sendable {
    private let time = Atomic<Int64>(1_000_000_000)
    var now: Int64 { time.load(ordering: .relaxed) }
    func advance(milliseconds: Int64) { time.add(milliseconds * 1_000_000, ordering: .relaxed) }
}

extension ByteBuffer {
    /// The buffer parsed as a JSON object.
    var jsonObject: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(readableBytesView))) as? [String: Any] ?? [:]
    }

    var text: String { String(buffer: self) }
}

extension TestClientProtocol {
    /// POSTs a JSON text.
    func post(_ uri: String, json: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        var headers = headers
        headers[.contentType] = "application/json"
        return try await execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: json)) { $0 }
    }

    func get(_ uri: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        try await execute(uri: uri, method: .get, headers: headers) { $0 }
    }
}
