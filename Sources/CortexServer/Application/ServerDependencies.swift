public import CoreMetrics
import CortexCore
public import CortexRuntime
public import CortexStore
public import Foundation
public import Logging
public import Prometheus
public import ServiceLifecycle
public import Tracing

/// The long-lived parts a server is built from, opened once at start.
public struct ServerDependencies: Sendable {
    /// The validated configuration.
    public let configuration: CortexConfiguration
    /// The embedded database.
    public let store: StateStore
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
    /// Holds, settles and releases the price of billed requests.
    public let billing: Billing
    /// The ledger's credit leases (`CREDIT_LEASE_HOLDS` above 0), which a service keeps.
    public let creditLeases: LeasingLedger?
    /// Decides rate limits: in this process, or shared through Redis.
    public let rateLimiter: any RateLimiting
    /// The Redis-backed limiter when `REDIS_URL` is set, for `/ready` and shutdown.
    public let sharedRateLimiter: SharedRateLimiter?
    /// Reads the configuration again (file and environment), for `POST /admin/reload-auth`.
    public let reloadConfiguration: @Sendable () throws -> CortexConfiguration
    /// Per-model counts and times for `/v2/models/{model}/stats`.
    public let statistics: InferenceStatistics
    /// The LLM deployments, the default first (`LLM_PRIMARY_URL`, then `llm.deployments`).
    public let llmGateways: [LLMGateway]
    /// The default LLM deployment, if any.
    public var llm: LLMGateway? { llmGateways.first }
    /// The long-lived parts that run beside the HTTP server, in the order the service group
    /// starts them (it stops them in reverse, after the server): the Redis connections, then each
    /// LLM deployment's warm-up. `runServer` and the test server run the same list.
    public var services: [any Service] {
        // The span exporter first, so that it stops last and flushes every span.
        var services: [any Service] = traceExport.map { [$0] } ?? []
        // Stops after the HTTP server, so every lease goes back once no request can use it.
        if let creditLeases { services.append(CreditLeaseKeeper(ledger: creditLeases)) }
        if let redis = sharedRateLimiter?.redis { services.append(CloseOnShutdown { await redis.close() }) }
        return services + trafficSyncs + [shadow, resources] + llmGateways
    }
    /// Every endpoint's traffic switches, `/v1/infer`'s first, changed by `POST /admin/config`.
    public let trafficControls: [TrafficControl]
    /// The A/B split of `POST /v1/infer`.
    public var traffic: TrafficControl { trafficControls[0] }
    /// Apply each endpoint's stored split, at start and after a change on another replica; store
    /// the canary's decisions; run promotions made elsewhere.
    public let trafficSyncs: [TrafficSync]
    /// Runs the shadow copies of `POST /v1/infer` (`SHADOW_ENABLED`).
    public let shadow: ShadowTraffic
    /// Samples CPU, memory, disk and descriptors for `GET /resources`.
    public let resources: ResourceMonitor
    /// The scoring model served by a remote endpoint (`MODEL_ENDPOINT_PROVIDER=remote`), if so.
    public let remoteModel: RemoteModel?
    /// The tracer (`OTEL_EXPORTER_OTLP_ENDPOINT`), or `nil` when tracing is off.
    public let tracer: (any Tracer)?
    /// Exports the tracer's spans.
    let traceExport: (any Service)?
    /// The sentence-embedding model of `POST /v1/embeddings` (`EMBEDDING_MODEL_DIR`), if one is configured.
    public let embeddings: EmbeddingModel?
    /// When the server was opened, for `/status`.
    public let startedAt = Date()
    /// Request ids, for the routes and for the answers the connection guard writes itself.
    let requestIDs = RequestIDGenerator()

    /// The metrics factory every part of a server records into, with Cortex's histogram buckets.
    public static func metricsFactory(_ prometheus: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: prometheus)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        ]
        // LLM answers take up to LLM_TOTAL_TIMEOUT_S (120 s by default): the request and
        // first-token histograms reach that far, so a slow LLM route is not all in +Inf.
        let long = factory.defaultDurationHistogramBuckets + [.seconds(30), .seconds(60), .seconds(120)]
        for name in ["http_request_duration_seconds", "llm_time_to_first_token_seconds"] { factory.durationHistogramBuckets[name] = long }
        factory.valueHistogramBuckets["model_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        factory.valueHistogramBuckets["shadow_absolute_difference"] = TrafficMetrics.differenceBuckets
        return factory
    }

    /// Seeds the identities the configuration names into the open `store` and loads every configured model.
    ///
    /// A model that fails to load is recorded as failed; the others still serve.
    ///
    /// - Parameters:
    ///   - store: The open database (``StateStore/withOpened(_:metrics:logger:_:)``), recording into `prometheus`.
    ///   - reload: How `POST /admin/reload-auth` reads the configuration again; by default
    ///     it gets the configuration given here.
    ///   - clock: Nanoseconds on a monotonic clock for rate limits and the LLM providers' circuit
    ///     breakers (tests pass their own).
    public static func open(
        configuration: CortexConfiguration,
        store: StateStore,
        prometheus: PrometheusCollectorRegistry,
        logger: Logger,
        reload: (@Sendable () throws -> CortexConfiguration)? = nil,
        clock: @escaping @Sendable () -> Int64 = LocalRateLimiter.monotonicNanoseconds
    ) async throws -> ServerDependencies {
        let factory = metricsFactory(prometheus)
        let tracing = try configuration.traces.makeTracer(logger: logger)
        if tracing != nil {
            logger.notice(
                "TRACING",
                metadata: [
                    "endpoint": "\(configuration.traces.endpoint ?? "")", "sampler": "\(configuration.traces.sampler.rawValue)",
                    "ratio": "\(configuration.traces.samplerRatio)",
                ])
        }
        let metrics = ServerMetrics(factory: factory, version: CortexVersion.current)
        let creditLeases = configuration.billing.leasePolicy.map { store.useCreditLeases($0) }
        store.setIdempotencyTTL(.seconds(configuration.billing.idempotencyTTLSeconds))
        let schemaVersion = try await store.schemaVersion()
        logger.info("DB_OPEN", metadata: ["path": "\(store.location)", "schema_version": .stringConvertible(schemaVersion)])
        try await seedIdentities(configuration: configuration, store: store, logger: logger)
        let statistics = InferenceStatistics()
        let loader = ModelLoader(onnxLibrary: configuration.onnx.library) { model, execution in
            InferenceRunner.recordExecution(execution, model: model, metrics: metrics, statistics: statistics)
        }
        let registry = ModelRegistry(loader: loader, logger: logger)
        registry.load(configuration.models)
        let remote = try useModelEndpoint(configuration, registry: registry, metrics: metrics, clock: clock, logger: logger)
        metrics.tenantCount.record(try await store.tenants().count)
        var authConfiguration = Authenticator.Configuration()
        authConfiguration.requireAPIKey = configuration.auth.requireAPIKey
        authConfiguration.cacheTTL = .seconds(configuration.auth.cacheTTLSeconds)
        let localLimiter = LocalRateLimiter(now: clock)
        let sharedLimiter = try configuration.rateLimit.redisURL.map { url in
            SharedRateLimiter(
                redis: RedisRateLimit(
                    client: try RedisClient(
                        url: url, timeout: .milliseconds(configuration.rateLimit.redisTimeoutMilliseconds),
                        tls: configuration.rateLimit.redisTLS)
                ),
                local: localLimiter,
                location: RedactedURL.redacting(url),
                metrics: metrics,
                logger: logger
            )
        }
        let embeddings = try loadEmbeddings(configuration, loader: loader, logger: logger) { model, execution in
            InferenceRunner.recordExecution(execution, model: model, metrics: metrics, statistics: statistics)
        }
        let drain = DrainState()
        let llmGateways = configuration.llmDeployments.map {
            LLMGateway(configuration: $0, metricsFactory: factory, logger: logger, now: clock)
        }
        let readiness = ReadinessChecks(
            store: store,
            registry: registry,
            drain: drain,
            minFreeDiskMB: configuration.readiness.minFreeDiskMB,
            metrics: metrics,
            sharedRateLimiter: sharedLimiter,
            llm: llmGateways,
            logger: logger
        )
        let trafficMetrics = TrafficMetrics(factory: factory)
        let trafficControls = configuration.allTraffic.map { TrafficControl($0, metrics: trafficMetrics) }
        let trafficSyncs = zip(trafficControls, configuration.allTraffic).map { control, base in
            TrafficSync(control: control, store: store, base: base, registry: registry, logger: logger)
        }
        // The stored switches apply from the first request; a promotion counted before this start
        // is not run again (the configured files are what this start serves).
        for sync in trafficSyncs { await sync.poll(promoting: false) }
        return ServerDependencies(
            configuration: configuration,
            store: store,
            registry: registry,
            drain: drain,
            prometheus: prometheus,
            metrics: metrics,
            readiness: readiness,
            authenticator: Authenticator(store: store, configuration: authConfiguration),
            billing: Billing(ledger: store.ledger, configuration: configuration.billing, metrics: metrics),
            creditLeases: creditLeases,
            rateLimiter: sharedLimiter ?? localLimiter,
            sharedRateLimiter: sharedLimiter,
            reloadConfiguration: reload ?? { configuration },
            statistics: statistics,
            llmGateways: llmGateways,
            trafficControls: trafficControls,
            trafficSyncs: trafficSyncs,
            shadow: ShadowTraffic(depth: configuration.traffic.shadowQueueDepth, metrics: trafficMetrics),
            resources: ResourceMonitor(diskPath: ReadinessChecks.diskPath(of: store)),
            remoteModel: remote,
            tracer: tracing?.tracer,
            traceExport: tracing?.service,
            embeddings: embeddings
        )
    }

    /// Texts that may wait for the embedding model: each text of a request waits on its own, and
    /// one request may carry 2,048 of them, so a few full requests fit.
    static let embeddingQueue = 16_384

    /// Loads the embedding model `EMBEDDING_MODEL_DIR` names, if any.
    ///
    /// - Throws: ``ConfigurationError`` when it is set but cannot be served (no ONNX Runtime, a
    ///   file missing or not understood): a setting that cannot be honoured stops start-up.
    static func loadEmbeddings(
        _ configuration: CortexConfiguration, loader: ModelLoader, logger: Logger,
        onExecution: @escaping @Sendable (String, DynamicBatcher.Execution) -> Void
    ) throws -> EmbeddingModel? {
        let settings = configuration.embeddings
        guard let directory = settings.directory, let name = settings.servedName else { return nil }
        do {
            let model = try EmbeddingModel(
                name: name, directory: directory, library: loader.onnxRuntime.get(),
                batching: BatchingOptions(maxBatchSize: settings.maxBatchSize, maxQueue: Self.embeddingQueue), threads: settings.runThreads,
                onExecution: { onExecution(name, $0) })
            logger.notice(
                "EMBEDDING_MODEL_LOADED",
                metadata: [
                    "model": "\(name)", "path": "\(directory)", "dimensions": .stringConvertible(model.dimensions),
                    "max_tokens": .stringConvertible(model.maximumTokens), "threads": .stringConvertible(settings.runThreads),
                ])
            return model
        } catch {
            throw ConfigurationError(
                key: "EMBEDDING_MODEL_DIR", value: directory, expected: "a sentence-embedding model Cortex can serve: \(error)")
        }
    }

    /// With `MODEL_ENDPOINT_PROVIDER` other than `local`, puts a ``RemoteModel`` in the scoring
    /// model's place (`SCORING_MODEL`, else the first model with named features): its requests go
    /// to the remote endpoint, and to the local model when the remote fails
    /// (`MODEL_ENDPOINT_FALLBACK` logged, `model_prediction_errors{provider}` counted).
    ///
    /// - Throws: ``ConfigurationError`` when there is no local scoring model to check requests
    ///   against and fall back to, or when a SageMaker or Azure endpoint cannot take its signature.
    static func useModelEndpoint(
        _ configuration: CortexConfiguration, registry: ModelRegistry, metrics: ServerMetrics, clock: @escaping @Sendable () -> Int64,
        logger: Logger
    ) throws -> RemoteModel? {
        let endpoint = configuration.modelEndpoint
        let provider = endpoint.provider.rawValue
        guard endpoint.provider != .local else { return nil }
        // The scoring model and its loaded model, in one pass.
        let found = registry.entries.lazy.compactMap { entry -> (ModelRegistry.Entry, any InferenceModel)? in
            switch entry.state {
            case .ready(let model), .warming(let model):
                let isScoring = configuration.scoringModel.map { $0 == entry.source.name } ?? !model.metadata.featureNames.isEmpty
                return isScoring ? (entry, model) : nil
            case .loading, .failed: return nil
            }
        }.first
        let (local, model) = (found?.0, found?.1)
        guard let local, let model else {
            throw ConfigurationError(
                key: "MODEL_ENDPOINT_PROVIDER", value: provider,
                expected:
                    "a local scoring model that loads (SCORING_MODEL, or a tabular model in MODEL_PATH): its signature checks requests and it answers when the remote fails"
            )
        }
        let wire: any RemoteWire
        switch endpoint.provider {
        case .local, .remote:
            wire = InferenceProtocolWire(url: endpoint.url, model: endpoint.model ?? model.metadata.name, apiKey: endpoint.apiKey)
        case .sagemaker:
            guard let name = endpoint.sageMakerEndpointName, let region = endpoint.awsRegion, let credentials = endpoint.awsCredentials
            else {
                throw ConfigurationError(key: "SAGEMAKER_ENDPOINT_NAME", value: nil, expected: "the endpoint, AWS_REGION and credentials")
            }
            wire = SageMakerWire(
                endpointName: name, region: region, baseURL: endpoint.awsEndpointURL, contentType: endpoint.sageMakerContentType,
                credentials: AWSCredentialSource(credentials))
        case .azure:
            guard let url = endpoint.azureURL, let key = endpoint.azureAPIKey else {
                throw ConfigurationError(key: "AZURE_ML_ENDPOINT_URL", value: nil, expected: "the scoring URI and AZURE_ML_API_KEY")
            }
            wire = AzureMLWire(url: url, apiKey: key, deployment: endpoint.azureDeployment)
        }
        let sendsRows = endpoint.provider == .azure || (endpoint.provider == .sagemaker && endpoint.sageMakerContentType == .csv)
        if sendsRows, let reason = TabularRows.check(model.metadata) {
            throw ConfigurationError(key: "MODEL_ENDPOINT_PROVIDER", value: provider, expected: "a model it can send as rows: \(reason)")
        }
        let name = local.source.name
        let errors = metrics.remoteErrors(model: name, provider: provider)
        let remote = RemoteModel(
            local: model, wire: wire, timeout: .milliseconds(endpoint.timeoutMilliseconds),
            // Five failures in a row open it for 30 s, then one call tries the remote again.
            breaker: CircuitBreaker(failureThreshold: 5, cooldown: .seconds(30)),
            now: clock
        ) { reason in
            errors.increment()
            logger.warning("MODEL_ENDPOINT_FALLBACK", metadata: ["model": "\(name)", "provider": "\(provider)", "reason": "\(reason)"])
        }
        registry.register(remote, source: local.source, files: local.files)
        logger.notice("MODEL_ENDPOINT", metadata: ["model": "\(name)", "provider": "\(provider)", "url": "\(wire.target)"])
        return remote
    }

    /// Makes the stored environment keys match the configuration: the demo key exists exactly when
    /// the demo tenant is enabled, and the `default` tenant's keys are exactly `API_KEYS`, so
    /// removing a key from `API_KEYS` revokes it at the next start. Idempotent.
    static func seedIdentities(configuration: CortexConfiguration, store: StateStore, logger: Logger) async throws {
        let now = Date()
        func tenant(_ name: String, create: Bool) async throws -> Tenant? {
            if let existing = try await store.tenant(named: name) { return existing }
            return create ? try await store.createTenant(named: name) : nil
        }
        let demoEnabled = configuration.auth.demoEnabled(host: configuration.server.host)
        if let demo = try await tenant(CortexConfiguration.demoTenant, create: demoEnabled) {
            if configuration.billing.demoCredits > .zero {
                // Once: the grant's request id is unique in the ledger, so a restart (or a
                // reload) finds it there and does not refill the tenant.
                _ = try await store.ledger.grant(
                    Grant(tenantID: demo.id, amount: configuration.billing.demoCredits, requestID: "demo-credits", note: "DEMO_CREDITS")
                )
            }
            let demoKeys = demoEnabled ? [CortexConfiguration.demoAPIKey] : []
            for key in demoKeys {
                _ = try await store.importKey(key, tenantID: demo.id, scopes: [.infer])
            }
            _ = try await store.retireEnvironmentKeys(tenantID: demo.id, keeping: demoKeys, at: now)
        }
        if demoEnabled {
            logger.warning(
                "DEMO_TENANT_ACTIVE",
                metadata: [
                    "tenant": "\(CortexConfiguration.demoTenant)",
                    "hint": "the documented demo key works; set DEMO_TENANT=off in production",
                ]
            )
        }
        // Tenants whose environment keys this start manages; the others' are retired below.
        var managed: [Int64] = []
        let apiKeys = configuration.auth.apiKeys
        if let owner = try await tenant("default", create: !apiKeys.isEmpty) {
            managed.append(owner.id)
            for key in apiKeys {
                _ = try await store.importKey(key, tenantID: owner.id, scopes: [.infer])
            }
            let retired = try await store.retireEnvironmentKeys(tenantID: owner.id, keeping: apiKeys, at: now)
            logger.info(
                "API_KEYS_SEEDED",
                metadata: ["tenant": "default", "count": .stringConvertible(apiKeys.count), "retired": .stringConvertible(retired)]
            )
        }
        for entry in configuration.auth.tenantKeys {
            guard let owner = try await tenant(entry.tenant, create: true) else { continue }
            managed.append(owner.id)
            for key in entry.keys {
                _ = try await store.importKey(key, tenantID: owner.id, scopes: [.infer])
            }
            let retired = try await store.retireEnvironmentKeys(tenantID: owner.id, keeping: entry.keys, at: now)
            logger.info(
                "API_KEYS_SEEDED",
                metadata: [
                    "tenant": "\(entry.tenant)", "variable": "\(entry.variable)", "count": .stringConvertible(entry.keys.count),
                    "retired": .stringConvertible(retired),
                ]
            )
        }
        // The demo tenant's keys were settled above; a tenant whose API_KEY_<TENANT> is gone loses its key.
        if let demo = try await store.tenant(named: CortexConfiguration.demoTenant) { managed.append(demo.id) }
        let orphaned = try await store.retireEnvironmentKeys(exceptTenants: managed, at: now)
        if orphaned > 0 {
            logger.notice(
                "API_KEYS_RETIRED", metadata: ["count": .stringConvertible(orphaned), "reason": "their API_KEY_<TENANT> variable is gone"])
        }
    }
}

extension StateStore {
    /// Opens the configured database (the SQLite file, or PostgreSQL), runs `body`, closes it: the
    /// one way the server and the CLI hold a store, so its lifetime is a scope, not a task left running.
    public static func withOpened<Value>(
        _ database: CortexConfiguration.Database,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance,
        logger: Logger,
        _ body: (StateStore) async throws -> Value
    ) async throws -> Value {
        switch database {
        case .sqlite(let path): try await withSQLite(path: path, metrics: metrics, logger: logger, body)
        case .postgres(let url): try await withPostgres(url: url, metrics: metrics, logger: logger, body)
        }
    }
}

extension CortexConfiguration.Billing {
    /// How replicas lease credits, or `nil` when they do not (`CREDIT_LEASE_HOLDS=0`): a lease
    /// lives as long as a hold, at most 30 s, renewed while its replica runs.
    var leasePolicy: CreditLeasePolicy? {
        guard leaseHolds > 0 else { return nil }
        return CreditLeasePolicy(holdsPerLease: leaseHolds, lifetime: .milliseconds(Int64(min(holdTTLSeconds, 30) * 1000)))
    }
}
