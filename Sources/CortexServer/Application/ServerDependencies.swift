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
    /// Turns API keys into principals.
    public let authenticator: Authenticator

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
        try await seedIdentities(configuration: configuration, store: store, logger: logger)
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
        metrics.tenantCount.record(try await store.tenants().count)
        var authConfiguration = Authenticator.Configuration()
        authConfiguration.requireAPIKey = configuration.auth.requireAPIKey
        authConfiguration.cacheTTL = .milliseconds(Int(configuration.auth.cacheTTLSeconds * 1000))
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
            readiness: readiness,
            authenticator: Authenticator(store: store, configuration: authConfiguration)
        )
    }

    /// Creates the demo tenant and key (when enabled) and the `default` tenant's `API_KEYS`.
    /// Idempotent: keys already stored are left as they are.
    static func seedIdentities(configuration: CortexConfiguration, store: SQLiteStore, logger: Logger) async throws {
        func tenant(_ name: String) async throws -> Tenant {
            if let existing = try await store.tenant(named: name) { return existing }
            return try await store.createTenant(named: name)
        }
        if configuration.auth.demoEnabled(host: configuration.server.host) {
            let demo = try await tenant(CortexConfiguration.demoTenant)
            _ = try await store.importKey(CortexConfiguration.demoAPIKey, tenantID: demo.id, scopes: [.infer])
            logger.warning(
                "DEMO_TENANT_ACTIVE",
                metadata: ["tenant": "\(demo.name)", "hint": "the documented demo key works; set DEMO_TENANT=off in production"]
            )
        }
        if !configuration.auth.apiKeys.isEmpty {
            let owner = try await tenant("default")
            for key in configuration.auth.apiKeys {
                _ = try await store.importKey(key, tenantID: owner.id, scopes: [.infer])
            }
            logger.info("API_KEYS_SEEDED", metadata: ["tenant": "default", "count": .stringConvertible(configuration.auth.apiKeys.count)])
        }
    }
}
