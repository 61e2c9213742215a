import CortexCore
import CortexRuntime
public import Hummingbird
public import Logging
import NIOCore
public import ServiceLifecycle

/// Builds the router: middleware in request order, then every controller.
public func buildRouter(_ dependencies: ServerDependencies) -> Router<CortexRequestContext> {
    let configuration = dependencies.configuration
    let router = Router(context: CortexRequestContext.self)
    router.add(middleware: RequestIDMiddleware(generator: dependencies.requestIDs))
    // The request's span (OTEL_EXPORTER_OTLP_ENDPOINT) holds every log line and step after it.
    router.add(middleware: TracingMiddleware(tracer: dependencies.tracer, quietPaths: ProbeController<CortexRequestContext>.probeRoutes))
    router.add(
        middleware: AccessLogMiddleware(metrics: dependencies.metrics, quietRoutes: ProbeController<CortexRequestContext>.quietRoutes))
    router.add(middleware: ErrorResponseMiddleware())
    // Before any other work: the Host (ALLOWED_HOSTS), then CORS on every route (CORS_ORIGINS).
    if !configuration.server.allowedHosts.isEmpty {
        router.add(
            middleware: HostCheckMiddleware(
                patterns: configuration.server.allowedHosts, exempt: ProbeController<CortexRequestContext>.probeRoutes))
    }
    if !configuration.server.corsOrigins.isEmpty {
        router.add(middleware: CORSMiddleware(allowedOrigins: configuration.server.corsOrigins))
    }

    // Routes that infer (and, with the ledger, bill) need an API key with the `infer` scope.
    // Then, before any inference or billing, the rate limit (when RATE_LIMIT_RPS is set).
    let inferring = router.group().add(middleware: APIKeyMiddleware(authenticator: dependencies.authenticator, scope: .infer))
    if let limit = configuration.rateLimit.limit {
        inferring.add(middleware: RateLimitMiddleware(limiter: dependencies.rateLimiter, limit: limit, metrics: dependencies.metrics))
    }

    let runner = InferenceRunner(registry: dependencies.registry, metrics: dependencies.metrics, statistics: dependencies.statistics)
    let modelLimits = ModelRateLimits(
        limiter: dependencies.rateLimiter,
        configuration: configuration.rateLimit,
        metrics: dependencies.metrics
    )
    let pipeline = InferencePipeline(
        runner: runner, modelLimits: modelLimits, billing: dependencies.billing,
        traffic: Dictionary(uniqueKeysWithValues: dependencies.trafficControls.map { ($0.endpoint, $0) }), shadow: dependencies.shadow)
    ProbeController(checks: dependencies.readiness, registry: dependencies.registry).addRoutes(to: router)
    StatusController(dependencies: dependencies).addRoutes(to: router)
    MetricsController(registry: dependencies.prometheus) {
        dependencies.metrics.process.update()
        // One indexed count per scrape; a database that cannot answer leaves the last figure.
        if let count = try? await dependencies.store.tenantCount() { dependencies.metrics.tenantCount.record(count) }
    }
    .addRoutes(to: router)
    InferenceProtocolController(
        pipeline: pipeline,
        registry: dependencies.registry,
        maxBodyBytes: configuration.server.maxBodyBytes,
        serverVersion: CortexVersion.current
    ).addRoutes(to: router, protected: inferring)
    ScoringController(
        pipeline: pipeline,
        registry: dependencies.registry,
        modelName: configuration.scoringModel,
        maxBodyBytes: configuration.server.maxBodyBytes
    ).addRoutes(to: inferring)
    ImageController(
        pipeline: pipeline,
        defaultModel: configuration.imageModel,
        maxBodyBytes: configuration.server.maxBodyBytes,
        decoder: ImageDecoder(maxPixels: configuration.imageMaxPixels)
    ).addRoutes(to: inferring)
    AccountController(
        store: dependencies.store,
        registry: dependencies.registry,
        authenticator: dependencies.authenticator,
        billing: configuration.billing,
        rateLimit: configuration.rateLimit.limit,
        maxBodyBytes: configuration.server.maxBodyBytes
    ).addRoutes(to: inferring)
    addLLMRoutes(to: router, inferring: inferring, pipeline: pipeline, dependencies)
    if dependencies.embeddings != nil || !dependencies.llmGateways.isEmpty {
        EmbeddingsController(
            model: dependencies.embeddings, gateways: dependencies.llmGateways, pipeline: pipeline,
            pricePer1K: configuration.embeddings.pricePer1K,
            tokenLimits: TokenRateLimits(
                limiter: dependencies.rateLimiter, limit: configuration.llm.tokenLimit, metrics: dependencies.metrics),
            maxBodyBytes: configuration.server.maxBodyBytes
        ).addRoutes(to: inferring)
    } else {
        router.post("/v1/embeddings") { _, context -> Response in
            LLMController<CortexRequestContext>.openAIError(
                APIError(
                    status: 404, code: "embeddings_not_configured",
                    message:
                        "no embedding model or LLM deployment is configured here; set EMBEDDING_MODEL_DIR or LLM_PRIMARY_URL (docs/configuration.md)"
                ),
                requestID: context.requestID)
        }
    }
    let admin = router.group().add(
        middleware: AdminAuthMiddleware(adminToken: configuration.auth.adminToken, authenticator: dependencies.authenticator))
    AdminController(dependencies: dependencies).addRoutes(to: admin)
    ModelRepositoryController(
        registry: dependencies.registry, directory: configuration.modelRepository, traffic: dependencies.trafficControls,
        maxBodyBytes: configuration.server.maxBodyBytes, drainTimeout: .seconds(configuration.server.drainTimeoutSeconds)
    ).addRoutes(to: admin)
    return router
}

/// The LLM routes, with the inference routes (CORS, for the LLM assistant's `/chat` in a browser,
/// is the router's); without a deployment, answers that say what to set.
private func addLLMRoutes(
    to router: Router<CortexRequestContext>,
    inferring: RouterGroup<CortexRequestContext>,
    pipeline: InferencePipeline,
    _ dependencies: ServerDependencies
) {
    let configuration = dependencies.configuration
    guard !dependencies.llmGateways.isEmpty else {
        let missing = APIError(
            status: 404, code: "llm_not_configured",
            message: "no LLM deployment is configured here; set LLM_PRIMARY_URL and LLM_PRIMARY_MODEL (docs/configuration.md)")
        for path in ["/generate", "/chat", "/v1/chat/completions", "/v1/completions"] {
            router.post(RouterPath(path)) { _, _ -> Response in throw missing }
        }
        router.get("/v1/models") { _, _ in Response.json(.ok, #"{"object":"list","data":[]}"#) }
        return
    }
    LLMController(
        gateways: dependencies.llmGateways,
        pipeline: pipeline,
        tokenLimits: TokenRateLimits(limiter: dependencies.rateLimiter, limit: configuration.llm.tokenLimit, metrics: dependencies.metrics),
        maxBodyBytes: configuration.server.maxBodyBytes,
        created: dependencies.startedAt
    ).addRoutes(to: inferring)
}

/// Builds the HTTP application on the configured address.
public func buildApplication(_ dependencies: ServerDependencies, logger: Logger) -> some ApplicationProtocol {
    let server = dependencies.configuration.server
    return Application(
        router: buildRouter(dependencies),
        server: .guardedHTTP1(server, metrics: dependencies.metrics.connections, requestIDs: dependencies.requestIDs),
        configuration: .init(address: .hostname(server.host, port: server.port), serverName: "cortex"),
        onServerRunning: { channel in
            let address = channel.localAddress
            logger.notice(
                "SERVER_STARTED",
                metadata: [
                    "host": "\(server.host)",
                    "port": .stringConvertible(address?.port ?? server.port),
                    "url": "http://\(server.host):\(address?.port ?? server.port)",
                    "max_connections": .stringConvertible(server.maxConnections),
                ]
            )
        },
        logger: logger
    )
}

/// Runs `cortex serve` until SIGTERM or SIGINT: the HTTP server, the readiness monitor and the drain.
///
/// On a signal `/ready` turns 503 at once, the listener stays open for `DRAIN_DELAY_S`, then closes;
/// in-flight requests get `DRAIN_TIMEOUT_S` to finish before the remaining work is cancelled.
///
/// - Parameter first: Services to start before all others and stop after them (the log writer).
public func runServer(_ dependencies: ServerDependencies, first: [any Service] = [], logger: Logger) async throws {
    let configuration = dependencies.configuration
    let application = buildApplication(dependencies, logger: logger)
    let monitor = ReadinessMonitor(
        checks: dependencies.readiness,
        interval: .seconds(configuration.readiness.monitorIntervalSeconds)
    )
    let drain = DrainService(
        state: dependencies.drain,
        delay: .seconds(configuration.server.drainDelaySeconds),
        logger: logger
    )
    // Started in this order, stopped in reverse: the drain first, the HTTP server once it has
    // drained, then the parts it used.
    var groupConfiguration = ServiceGroupConfiguration(
        services: (first + dependencies.services).map { .init(service: $0) } + [
            .init(
                service: DrainTimeoutReporter(application: application, timeout: configuration.server.drainTimeoutSeconds, logger: logger)),
            .init(service: monitor),
            .init(
                service: HoldSweeper(
                    ledger: dependencies.store.ledger,
                    interval: .seconds(configuration.billing.sweepIntervalSeconds),
                    idempotencyTTL: .seconds(configuration.billing.idempotencyTTLSeconds),
                    logger: logger
                )
            ),
            .init(service: drain),
        ],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
    )
    groupConfiguration.maximumGracefulShutdownDuration = .seconds(
        configuration.server.drainDelaySeconds + configuration.server.drainTimeoutSeconds
    )
    groupConfiguration.maximumCancellationDuration = .seconds(5)
    let group = ServiceGroup(configuration: groupConfiguration)
    try await group.run()
    logger.notice("SERVER_STOPPED")
}

/// Runs the HTTP application and says so in the log when graceful shutdown ran out of time
/// and requests still in flight were cut off.
struct DrainTimeoutReporter<Wrapped: Service>: Service {
    let application: Wrapped
    let timeout: Double
    let logger: Logger

    init(application: Wrapped, timeout: Double, logger: Logger) {
        self.application = application
        self.timeout = timeout
        self.logger = logger
    }

    func run() async throws {
        do {
            try await application.run()
        } catch is CancellationError {}
        if Task.isCancelled {
            logger.warning("DRAIN_TIMEOUT", metadata: ["drain_timeout_s": .stringConvertible(timeout)])
        }
    }
}
