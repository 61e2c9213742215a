import CoreMetrics
import Dispatch
public import Metrics
import Synchronization

/// The metrics Cortex records, under the seed guides' names, with handles cached per label set.
///
/// Label sets are fixed per metric name (Prometheus requires it): routes are templates such
/// as `/v2/models/{model}/infer`, never raw paths, so their number stays bounded.
public final class ServerMetrics: Sendable {
    /// How an inference request ended, as `inference_outcome_total{outcome}` counts it.
    public enum Outcome: String, Sendable, CaseIterable {
        case success
        case invalidInput = "invalid_input"
        case modelNotReady = "model_not_ready"
        /// Refused with 402: the tenant's balance could not cover the price.
        case creditsExhausted = "credits_exhausted"
        /// Refused with 503: the model's dynamic batching queue was full.
        case queueFull = "queue_full"
        case error
    }

    /// Per-model handles.
    struct ModelMetrics: Sendable {
        let latency: Timer
        let predictionLatency: Timer
        let predictionErrors: Counter
        let batchSize: Recorder
        /// `model_queue_seconds{model}`: time a request waited in the dynamic batcher.
        let queueLatency: Timer
        let outcomes: [Outcome: Counter]
        let ready: Gauge
        /// `model_file_changed{model}`: 1 while the files on disk differ from those loaded.
        let fileChanged: Gauge
        /// `credits_spent_total{model}`: credits settled (the inference platform).
        let creditsSpent: FloatingPointCounter
    }

    struct HTTPKey: Hashable {
        var route: String
        var method: String
        var status: Int
    }

    struct HTTPHandles: Sendable {
        let requests: Counter
        let duration: Timer
    }

    /// The factory every handle is made on (the store's ledger records its own on it too).
    public let factory: any MetricsFactory
    private let httpHandles = Mutex<[HTTPKey: HTTPHandles]>([:])
    /// A model's handles, and a split variant's (no string is built per look-up).
    struct ModelKey: Hashable {
        var name: String
        var variant: String?
    }
    private let modelHandles = Mutex<[ModelKey: ModelMetrics]>([:])
    private let trafficHandles = Mutex<[String: Counter]>([:])
    /// `status_ready{service="backend"}`: 1 while `/ready` would answer 200.
    let statusReady: Gauge
    /// `api_tenants_count`: tenants in the identity store (the multi-tenant ops API).
    let tenantCount: Gauge
    /// `status_legacy_requests_total`: requests to the legacy `/status/summary` (the LLM assistant's cutover).
    let legacyStatusRequests: Counter
    /// `lead_enrich_total`: leads scored by `POST /api/v1/score` (the multi-tenant ops API's name).
    let leadsEnriched: Counter
    /// `lead_outcome_total{band}`: scored leads by ``LeadBand``.
    private let leadOutcomes: [LeadBand: Counter]
    /// `rate_limit_decisions_total{result="allowed"}` and `{result="limited"}`.
    /// `rate_limit_backend_up`: 1 while rate limits are shared through Redis, 0 in local fallback.
    let rateLimitBackendUp: Gauge
    private let rateLimitAllowed: Counter
    private let rateLimitLimited: Counter
    /// Open, refused and timed-out connections (the connection guard's).
    public let connections: ConnectionMetrics
    /// `process_*`, read from `/proc` at each scrape.
    public let process: ProcessMetrics

    /// Creates the metrics on a factory and records `cortex_build_info`.
    public init(factory: any MetricsFactory, version: String) {
        self.factory = factory
        self.statusReady = Gauge(label: "status_ready", dimensions: [("service", "backend")], factory: factory)
        self.tenantCount = Gauge(label: "api_tenants_count", factory: factory)
        self.leadsEnriched = Counter(label: "lead_enrich_total", factory: factory)
        self.leadOutcomes = Dictionary(
            uniqueKeysWithValues: LeadBand.allCases.map {
                ($0, Counter(label: "lead_outcome_total", dimensions: [("band", $0.rawValue)], factory: factory))
            })
        self.legacyStatusRequests = Counter(
            label: "status_legacy_requests_total", dimensions: [("path", "/status/summary")], factory: factory)
        self.rateLimitBackendUp = Gauge(label: "rate_limit_backend_up", factory: factory)
        self.rateLimitAllowed = Counter(label: "rate_limit_decisions_total", dimensions: [("result", "allowed")], factory: factory)
        self.rateLimitLimited = Counter(label: "rate_limit_decisions_total", dimensions: [("result", "limited")], factory: factory)
        self.connections = ConnectionMetrics(factory: factory)
        self.process = ProcessMetrics(factory: factory)
        Gauge(label: "cortex_build_info", dimensions: [("version", version)], factory: factory).record(1)
    }

    /// Records one rate-limit decision.
    func rateLimitDecisions(limited: Bool) {
        (limited ? rateLimitLimited : rateLimitAllowed).increment()
    }

    /// Records one finished HTTP request.
    func recordRequest(route: String, method: String, status: Int, nanoseconds: UInt64) {
        let key = HTTPKey(route: route, method: method, status: status)
        let handles = httpHandles.withLock { cache in
            if let handles = cache[key] { return handles }
            let handles = HTTPHandles(
                requests: Counter(
                    label: "http_requests_total",
                    dimensions: [("method", method), ("route", route), ("status", String(status))],
                    factory: factory
                ),
                duration: Timer(
                    label: "http_request_duration_seconds",
                    dimensions: [("method", method), ("route", route), ("status", String(status))],
                    factory: factory
                )
            )
            cache[key] = handles
            return handles
        }
        handles.requests.increment()
        handles.duration.recordNanoseconds(Int64(clamping: nanoseconds))
    }

    /// `traffic_requests_total{endpoint,variant}`: requests an endpoint sent to each variant.
    func trafficRequest(endpoint: String, variant: String) {
        trafficHandles.withLock { cache in
            let key = endpoint + " " + variant
            if let counter = cache[key] { return counter }
            let counter = Counter(
                label: "traffic_requests_total", dimensions: [("endpoint", endpoint), ("variant", variant)], factory: factory)
            cache[key] = counter
            return counter
        }
        .increment()
    }

    /// The variant a traffic split chose for the request being served, set by the pipeline around
    /// the request's steps: `inference_outcome_total` and `inference_latency_seconds` then carry
    /// a `variant` label too (requests outside a split keep the series without it).
    @TaskLocal static var variant: String?

    /// The handles of one model (and of the current ``variant``, if any), created on first use.
    func model(_ name: String) -> ModelMetrics {
        let variant = Self.variant
        return modelHandles.withLock { cache in
            let key = ModelKey(name: name, variant: variant)
            if let metrics = cache[key] { return metrics }
            let dimensions = [("model", name)]
            // The split's series: the same family with one more label.
            let split = variant.map { [("variant", $0)] } ?? []
            var outcomes: [Outcome: Counter] = [:]
            for outcome in Outcome.allCases {
                outcomes[outcome] = Counter(
                    label: "inference_outcome_total",
                    dimensions: [("model", name), ("outcome", outcome.rawValue)] + split,
                    factory: factory
                )
            }
            let metrics = ModelMetrics(
                latency: Timer(label: "inference_latency_seconds", dimensions: dimensions + split, factory: factory),
                predictionLatency: Timer(label: "model_prediction_latency", dimensions: dimensions, factory: factory),
                predictionErrors: Counter(
                    label: "model_prediction_errors", dimensions: dimensions + [("provider", "local")], factory: factory),
                batchSize: Recorder(label: "model_batch_size", dimensions: dimensions, aggregate: true, factory: factory),
                queueLatency: Timer(label: "model_queue_seconds", dimensions: dimensions, factory: factory),
                outcomes: outcomes,
                ready: Gauge(label: "model_ready", dimensions: dimensions, factory: factory),
                fileChanged: Gauge(label: "model_file_changed", dimensions: dimensions, factory: factory),
                creditsSpent: FloatingPointCounter(label: "credits_spent_total", dimensions: dimensions, factory: factory)
            )
            cache[key] = metrics
            return metrics
        }
    }

    /// `model_prediction_errors{model,provider}`: remote endpoint calls that failed (the local
    /// model answered instead), `provider` as `MODEL_ENDPOINT_PROVIDER` says.
    func remoteErrors(model: String, provider: String) -> Counter {
        Counter(label: "model_prediction_errors", dimensions: [("model", model), ("provider", provider)], factory: factory)
    }

    /// Counts leads scored by `POST /api/v1/score`: each in `lead_enrich_total`, and those with a
    /// single score in their band of `lead_outcome_total`.
    func leadsScored(_ scores: [Double]?, count: Int) {
        leadsEnriched.increment(by: count)
        for score in scores ?? [] { leadOutcomes[LeadBand(score: score)]?.increment() }
    }
}

extension ServerMetrics.ModelMetrics {
    func record(_ outcome: ServerMetrics.Outcome) {
        outcomes[outcome]?.increment()
    }
}

/// A lead's score band in `lead_outcome_total{band}`: `high` from 0.7, `medium` from 0.3, `low` below.
enum LeadBand: String, CaseIterable, Sendable {
    case high, medium, low

    init(score: Double) {
        self = score >= 0.7 ? .high : score >= 0.3 ? .medium : .low
    }
}
