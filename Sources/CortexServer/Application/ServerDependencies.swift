public import CortexRuntime
public import CortexStore
public import Logging
public import Prometheus

/// The long-lived parts a server is built from, opened once at start.
public struct ServerDependencies: Sendable {
    /// The validated configuration.
    public let configuration: CortexConfiguration
    /// The embedded database.
    public let store: SQLiteStore
    /// The served models.
    public let registry: ModelRegistry
    /// Whether shutdown has begun.
    public let drain: DrainState
    /// Where metrics are kept for `/metrics`.
    public let prometheus: PrometheusCollectorRegistry
    /// Cortex's metric handles.
    public let metrics: ServerMetrics
    /// The readiness checks behind `/ready`.
    public let readiness: ReadinessChecks

    /// Opens the database (running migrations) and loads every configured model.
    ///
    /// A model that fails to load is recorded as failed; the others still serve.
    public static func open(configuration: CortexConfiguration, logger: Logger) async throws -> ServerDependencies {
        guard case .sqlite(let path) = configuration.database else {
            preconditionFailure("only SQLite is configurable in this build")
        }
        let store = try await SQLiteStore.open(path: path, logger: logger)
        let schemaVersion = try await store.schemaVersion()
        logger.info("DB_OPEN", metadata: ["path": "\(store.path)", "schema_version": .stringConvertible(schemaVersion)])
        let registry = ModelRegistry(logger: logger)
        registry.load(configuration.models)
        let prometheus = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: prometheus)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        ]
        factory.valueHistogramBuckets["model_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        let metrics = ServerMetrics(factory: factory, version: CortexVersion.current)
        let drain = DrainState()
        let readiness = ReadinessChecks(
            store: store,
            registry: registry,
            drain: drain,
            minFreeDiskMB: configuration.readiness.minFreeDiskMB,
            metrics: metrics,
            logger: logger
        )
        return ServerDependencies(
            configuration: configuration,
            store: store,
            registry: registry,
            drain: drain,
            prometheus: prometheus,
            metrics: metrics,
            readiness: readiness
        )
    }
}
