public import CortexCore
public import CortexRuntime
public import CortexStore
public import Foundation
public import Logging

/// Everything `cortex serve` needs, with the defaults of the embedded setup.
///
/// Built by ``CortexConfiguration/load(file:environment:)`` from an optional YAML file,
/// overridden by environment variables named as the runbooks of the services it replaces name them.
public struct CortexConfiguration: Sendable, Equatable {
    /// Where to listen and how to treat requests.
    public struct Server: Sendable, Equatable {
        /// Interface to bind (`HOST`). Loopback by default; set `0.0.0.0` in containers.
        public var host = "127.0.0.1"
        /// TCP port (`PORT`); 0 picks a free port.
        public var port = 8000
        /// Largest accepted request body in bytes (`MAX_BODY_BYTES`); larger bodies get 413.
        public var maxBodyBytes = 1_048_576
        /// Seconds in-flight requests get to finish after SIGTERM (`DRAIN_TIMEOUT_S`).
        public var drainTimeoutSeconds = 30.0
        /// Seconds `/ready` reports 503 while the listener still accepts, before it closes (`DRAIN_DELAY_S`).
        public var drainDelaySeconds = 0.0
        /// Seconds a connection may sit idle between requests before it is closed (`IDLE_TIMEOUT_S`).
        public var idleTimeoutSeconds = 60.0
        /// Seconds from a request's first byte to the end of its head (`REQUEST_HEADER_TIMEOUT_S`); then 408.
        public var requestHeaderTimeoutSeconds = 10.0
        /// Seconds from the end of a request's head to the end of its body (`REQUEST_BODY_TIMEOUT_S`); then 408.
        public var requestBodyTimeoutSeconds = 60.0
        /// Connections open at once (`MAX_CONNECTIONS`); past it a new one gets 503 and is closed.
        /// By default 10,000, or fewer when the process's descriptor limit needs it (see ``ConnectionCapacity``).
        public var maxConnections = ConnectionCapacity.defaultMaximum
        /// Whether `MAX_CONNECTIONS` was set; a value the descriptor limit cannot hold then stops start-up.
        public var maxConnectionsSet = false
        /// The commit this build came from (`BUILD_SHA`, set by the image build), shown as
        /// `build.sha` in `/status/summary`.
        public var buildSHA = "unknown"
        /// The `Host` names requests may carry (`ALLOWED_HOSTS`): exact names, `*.domain` for its
        /// subdomains, or `*`; empty accepts any. Probes and `/metrics` answer whatever the host.
        public var allowedHosts: [String] = []
        /// Browser origins allowed to call Cortex (`CORS_ORIGINS`, or the LLM assistant's
        /// `ALLOWED_ORIGINS`): `https://app.example.com`, or `*` for any (then without credentials);
        /// empty answers no preflight and sends no CORS headers.
        public var corsOrigins: [String] = []
    }

    /// How logs are written.
    public struct Log: Sendable, Equatable {
        /// One JSON object per line (default) or plain text for a terminal.
        public enum Format: String, Sendable, CaseIterable {
            case json, text
        }
        /// Lowest level written (`LOG_LEVEL`).
        public var level: Logger.Level = .info
        /// Line format (`LOG_FORMAT`).
        public var format: Format = .json
    }

    /// OpenTelemetry traces (`OTEL_*`, the OpenTelemetry SDKs' own variables): exported over
    /// OTLP/HTTP only when `endpoint` is set; off, a request pays no span.
    public struct Traces: Sendable, Equatable {
        /// `OTEL_TRACES_SAMPLER`: which traces are kept, as the OpenTelemetry SDKs name them.
        public enum Sampler: String, Sendable, CaseIterable {
            case alwaysOn = "always_on"
            case alwaysOff = "always_off"
            case traceIDRatio = "traceidratio"
            case parentBasedAlwaysOn = "parentbased_always_on"
            case parentBasedAlwaysOff = "parentbased_always_off"
            case parentBasedTraceIDRatio = "parentbased_traceidratio"
        }
        /// `OTEL_EXPORTER_OTLP_PROTOCOL`: OTLP over HTTP, as protobuf or JSON.
        public enum ExportProtocol: String, Sendable, CaseIterable {
            case httpProtobuf = "http/protobuf"
            case httpJSON = "http/json"
        }
        /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL; spans go to `{endpoint}/v1/traces`.
        public var endpoint: String?
        public var exportProtocol = ExportProtocol.httpProtobuf
        /// `OTEL_SERVICE_NAME`.
        public var serviceName = "cortex"
        public var sampler = Sampler.parentBasedAlwaysOn
        /// `OTEL_TRACES_SAMPLER_ARG`: the ratio kept by the `traceidratio` samplers.
        public var samplerRatio = 1.0
    }

    /// Where state is kept.
    public enum Database: Sendable, Equatable {
        /// An SQLite file; the path is absolute.
        case sqlite(path: String)
        /// A PostgreSQL server, for several replicas (`postgres://user:password@host:port/db?sslmode=...`).
        case postgres(url: String)
    }

    /// What `/ready` requires.
    public struct Readiness: Sendable, Equatable {
        /// Least free disk, in MiB, on the database's filesystem (`MIN_FREE_DISK_MB`).
        public var minFreeDiskMB = 100
        /// Seconds between background readiness evaluations that keep `status_ready` fresh.
        public var monitorIntervalSeconds = 5.0
    }

    /// The status pages' legacy path (`/status/summary`, the LLM assistant's old one).
    public var status = Status()

    /// The LLM assistant's cutover from `/status/summary` to `/api/status/summary`.
    public struct Status: Sendable, Equatable {
        /// The legacy path answers 410 `legacy_path_removed` (`FAIL_ON_LEGACY`), so a CI smoke run
        /// fails on any legacy access.
        public var failOnLegacy = false
        /// When the legacy path goes away (`LEGACY_SUNSET`, a date), sent as its `Sunset` header.
        public var legacySunset: Date?
    }

    /// Who may call the API.
    public struct Auth: Sendable, Equatable {
        /// Whether the documented demo tenant and key exist.
        public enum Demo: String, Sendable, CaseIterable {
            /// On when the server listens on loopback only (a developer's machine), off otherwise.
            case auto
            case on
            case off
        }
        /// Inference routes refuse requests without a key (`REQUIRE_API_KEY`).
        public var requireAPIKey = true
        /// Keys seeded for the `default` tenant at start (`API_KEYS`, comma-separated). Secrets: never printed.
        public var apiKeys: [String] = []
        /// Keys seeded for tenants named by their variables (`API_KEY_EXPERTCO=...` makes the
        /// tenant `expertco` with that key; comma-separated for several), in name order. Secrets.
        public var tenantKeys: [TenantKeys] = []

        /// One `API_KEY_<TENANT>` variable: the tenant it names and its keys.
        public struct TenantKeys: Sendable, Equatable {
            public var tenant: String
            public var keys: [String]
            /// The variable, for messages.
            public var variable: String
        }
        /// The demo tenant (`DEMO_TENANT`).
        public var demo = Demo.auto
        /// Seconds a found key is trusted before it is read again (`AUTH_CACHE_TTL_S`).
        public var cacheTTLSeconds = 5.0
        /// The admin API's bearer token (`ADMIN_TOKEN`, or the multi-tenant ops API's `API_ADMIN_KEY`); `nil` leaves
        /// the admin API to keys with the `admin` scope. A secret: never printed.
        public var adminToken: String?

        /// Whether the demo tenant is created for a server bound to `host`.
        public func demoEnabled(host: String) -> Bool {
            switch demo {
            case .on: true
            case .off: false
            case .auto: ["127.0.0.1", "localhost", "::1"].contains(host)
            }
        }
    }

    /// How fast each API key may call (the A/B image service and the multi-tenant ops API).
    public struct RateLimit: Sendable, Equatable {
        /// Sustained requests per second per key (`RATE_LIMIT_RPS`); 0 turns rate limiting off.
        public var requestsPerSecond = 0.0
        /// Requests allowed at once (`RATE_LIMIT_BURST`); 0 means the rate, rounded up.
        public var burst = 0
        /// Redis shared by every replica (`REDIS_URL`, `redis://host:port`); `nil` keeps limits per process.
        public var redisURL: String?
        /// Milliseconds a Redis decision may take before the request is decided locally (`REDIS_TIMEOUT_MS`).
        public var redisTimeoutMilliseconds = 50
        /// TLS files for a `rediss://` Redis (`REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE`, `REDIS_TLS_KEY_FILE`).
        public var redisTLS = RedisTLSFiles()
        /// Limits per tenant and model (`RATE_LIMIT_OVERRIDES`), shared by all of a tenant's keys,
        /// on top of the per-key limit.
        public var overrides: [Override] = []

        /// A limit for one tenant (or `*`) calling one model (or `*`).
        public struct Override: Sendable, Equatable {
            public var tenant: String
            public var model: String
            public var requestsPerSecond: Double
            public var burst: Int

            /// Creates an override.
            public init(tenant: String, model: String, requestsPerSecond: Double, burst: Int) {
                self.tenant = tenant
                self.model = model
                self.requestsPerSecond = requestsPerSecond
                self.burst = burst
            }
        }

        /// The most specific override for `tenant` calling `model`: exact, then tenant with any
        /// model, then any tenant with that model.
        public func override(tenant: String, model: String) -> GCRA? {
            let match =
                overrides.first { $0.tenant == tenant && $0.model == model }
                ?? overrides.first { $0.tenant == tenant && $0.model == "*" }
                ?? overrides.first { $0.tenant == "*" && $0.model == model }
            return match.map { GCRA(rate: $0.requestsPerSecond, burst: $0.burst) }
        }

        /// The limit, or `nil` when off.
        public var limit: GCRA? {
            guard requestsPerSecond > 0 else { return nil }
            return GCRA(rate: requestsPerSecond, burst: burst > 0 ? burst : Int(requestsPerSecond.rounded(.up)))
        }
    }

    /// What requests cost.
    public struct Billing: Sendable, Equatable {
        /// Credits per request, by model name (`billing.prices`, or `MODEL_PRICES=name=credits,...`).
        public var prices: [String: Credits] = [:]
        /// Credits per request for models without a price (`DEFAULT_PRICE`); zero bills nothing.
        public var defaultPrice = Credits.zero
        /// Seconds a hold lives before an unfinished request's credits go back (`HOLD_TTL_S`).
        public var holdTTLSeconds = 300.0
        /// Seconds between sweeps that release expired holds (`HOLD_SWEEP_INTERVAL_S`).
        public var sweepIntervalSeconds = 10.0
        /// Seconds a finished request's `Idempotency-Key` is remembered (`IDEMPOTENCY_TTL_S`).
        public var idempotencyTTLSeconds = 86_400.0
        /// How many holds of a tenant's request one credit lease covers (`CREDIT_LEASE_HOLDS`);
        /// 0 holds every request in the database.
        public var leaseHolds = 100
        /// Credits the demo tenant is given once, when it is created (`DEMO_CREDITS`).
        public var demoCredits = Credits(microcredits: 100 * Credits.scale)

        /// The price of one request to `model`.
        public func price(of model: String) -> Credits {
            prices[model] ?? defaultPrice
        }
    }

    /// The demo tenant's key: the lead-scoring API's documented `API_KEYS` default, so its curl examples work.
    public static let demoAPIKey = "demo-api-key-123"
    /// The demo tenant's name.
    public static let demoTenant = "demo"

    public var server = Server()
    public var auth = Auth()
    public var log = Log()
    /// OpenTelemetry traces.
    public var traces = Traces()
    /// `DATABASE_URL`: `sqlite:PATH`, `sqlite:///ABSOLUTE`, or a plain file path.
    public var database = Database.sqlite(path: Self.absolutePath("data/cortex.db"))
    public var readiness = Readiness()
    public var billing = Billing()
    public var rateLimit = RateLimit()
    /// Models to serve (`models:` in YAML, or `MODEL_PATH`, comma-separated); by default the
    /// bundled lead-scoring model and the A/B image service's two image classifiers, `vA` and `vB`
    /// (`MODEL_VA_PATH`, `MODEL_VB_PATH` replace their files).
    public var models: [ModelSource] = [
        ModelSource(path: "models/lead-scoring"), ModelSource(name: "vA", path: "models/vA.onnx"),
        ModelSource(name: "vB", path: "models/vB.onnx"),
    ]
    /// ONNX Runtime.
    public var onnx = ONNX()
    /// The model behind `POST /v1/infer` when the request names none (`IMAGE_MODEL`).
    public var imageModel = "vA"

    /// The directory `POST /v2/repository/models/{model}/load` loads from (`MODEL_REPOSITORY`):
    /// `{model}` is its directory, `{model}.onnx` or `{model}.json` there.
    public var modelRepository = "models"
    /// Most pixels an image sent to `POST /v1/infer` may have (`IMAGE_MAX_PIXELS`).
    public var imageMaxPixels = 4096 * 4096

    /// Where ONNX Runtime's library is.
    public struct ONNX: Sendable, Equatable {
        /// `onnx.library` / `ORT_LIBRARY_PATH`; `nil` looks in `ORT_DYLIB_PATH`, `.venv`, then the system's Python.
        public var library: String?
    }
    /// How `POST /v1/infer` shares requests between the A/B image service's variants `vA` and `vB`.
    public var traffic = Traffic()
    /// More endpoints with a split of their own: Open Inference Protocol names whose requests go to
    /// one of two models (`traffic.endpoints` in YAML), each on top of `traffic`'s switches.
    public var trafficEndpoints: [Traffic] = []
    /// Every endpoint with traffic switches: `/v1/infer` first, then `traffic.endpoints`.
    public var allTraffic: [Traffic] { [traffic] + trafficEndpoints }

    /// One endpoint's traffic switches: the A/B image service's for `/v1/infer`, or a named endpoint's.
    public struct Traffic: Sendable, Equatable {
        /// The endpoint's name, as stored, counted (`endpoint` label) and called: `/v1/infer`, or the
        /// model name a named endpoint answers to under `/v2/models/{name}`.
        public var endpoint = Self.imageEndpoint
        /// The A/B image service's endpoint, `POST /v1/infer`: the default endpoint's name.
        public static let imageEndpoint = "/v1/infer"
        /// The primary variant's model (`vA`; `variant_a` of a named endpoint).
        public var variantA = "vA"
        /// The candidate variant's model (`vB`; `variant_b` of a named endpoint): the one a canary
        /// steps up and a promotion makes the primary.
        public var variantB = "vB"
        /// `vA`'s weight (`AB_WEIGHT_A`).
        public var weightA = 1.0
        /// `vB`'s weight (`AB_WEIGHT_B`); above 0 (or `AB_WEIGHT_A` at 0) turns the split on.
        public var weightB = 0.0
        /// The cookie that keeps a browser on its variant (`STICKY_COOKIE`); `nil` sets none.
        public var stickyCookie: String?
        /// Shadow traffic (`SHADOW_ENABLED`): each request the split serves is also run on the other
        /// variant after the answer, never billed or limited, and the two answers compared.
        public var shadowEnabled = false
        /// Copies waiting for the shadow model at most (`SHADOW_QUEUE_DEPTH`); more are dropped and counted.
        public var shadowQueueDepth = 64
        /// Canary analysis (`CANARY_ENABLED`): `vB` takes `canary.steps` of the traffic in turn,
        /// promoted after the last one or rolled back on a breach.
        public var canaryEnabled = false
        /// The step the canary is at (an index into `canary.steps`); stored with the switches.
        public var canaryStep = 0
        /// How the canary steps and what counts as a breach (`CANARY_*`).
        public var canary = CanaryPolicy()
        /// Promotions made so far (`POST /admin/promote`, `cortex traffic promote`); stored with the
        /// switches, so a replica that sees it go up loads the candidate's file as the primary too.
        public var promotions = 0

        /// Whether this is `/v1/infer`'s split (between the models named `vA` and `vB`).
        public var isImageEndpoint: Bool { endpoint == Self.imageEndpoint }

        /// The split between the two variants when the weights ask for one; `nil` leaves
        /// `/v1/infer` on `IMAGE_MODEL`. A named endpoint always splits.
        ///
        /// Shadow traffic and the canary need one too: with `AB_WEIGHT_B=0` and shadow on, every
        /// request goes to `vA` through the split (and its copy to `vB`). While the canary runs,
        /// its step sets the shares in place of the weights.
        public var split: TrafficSplit? {
            if canaryEnabled {
                let share = canary.share(at: canaryStep)
                return TrafficSplit([.init(model: variantA, weight: 1 - share), .init(model: variantB, weight: share)])
            }
            guard !isImageEndpoint || weightB > 0 || weightA == 0 || shadowEnabled else { return nil }
            return TrafficSplit([.init(model: variantA, weight: weightA), .init(model: variantB, weight: weightB)])
        }
    }

    /// Where the scoring model's inference runs (`MODEL_ENDPOINT_*`, the lead-scoring API's).
    public var modelEndpoint = ModelEndpoint()

    /// The lead-scoring API's model endpoint: `local` (this process), or `remote`, another Open
    /// Inference Protocol server at `url`, with the local model as the fallback.
    public struct ModelEndpoint: Sendable, Equatable {
        public enum Provider: String, Sendable, CaseIterable {
            case local, remote, sagemaker, azure
        }
        /// `MODEL_ENDPOINT_PROVIDER`.
        public var provider = Provider.local
        /// `MODEL_ENDPOINT_URL`: the remote server's base URL, e.g. `http://triton:8000`.
        public var url = ""
        /// `MODEL_ENDPOINT_MODEL`: the model's name there; by default the local model's.
        public var model: String?
        /// `MODEL_ENDPOINT_API_KEY`: sent as `Authorization: Bearer`. A secret: never printed.
        public var apiKey: String?
        /// `MODEL_ENDPOINT_TIMEOUT_MS`: the longest a remote call may take before the local model answers.
        public var timeoutMilliseconds = 2000

        /// `SAGEMAKER_ENDPOINT_NAME`: the SageMaker endpoint `InvokeEndpoint` calls.
        public var sageMakerEndpointName: String?
        /// `SAGEMAKER_CONTENT_TYPE`: `text/csv` (rows) or `application/json` (an Open Inference Protocol request).
        public var sageMakerContentType = SageMakerWire.ContentType.csv
        /// `AWS_REGION`: the SageMaker endpoint's region, e.g. `us-east-1`.
        public var awsRegion: String?
        /// `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`: the runtime's URL in place of `https://runtime.sagemaker.{region}.amazonaws.com`.
        public var awsEndpointURL: String?
        /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`: keys given directly. Secrets.
        public var awsAccessKeyID: String?
        public var awsSecretAccessKey: String?
        public var awsSessionToken: String?
        /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` / `_RELATIVE_URI`: the container credentials
        /// endpoint (ECS tasks, EKS Pod Identity), and its token (`AWS_CONTAINER_AUTHORIZATION_TOKEN`, or `_FILE`).
        public var awsContainerCredentialsFullURI: String?
        public var awsContainerCredentialsRelativeURI: String?
        public var awsContainerAuthorizationToken: String?
        public var awsContainerAuthorizationTokenFile: String?

        /// `AZURE_ML_ENDPOINT_URL`: the online endpoint's scoring URI.
        public var azureURL: String?
        /// `AZURE_ML_API_KEY`: the endpoint's key. A secret.
        public var azureAPIKey: String?
        /// `AZURE_ML_DEPLOYMENT_NAME`: one deployment of the endpoint, sent as `azureml-model-deployment`.
        public var azureDeployment: String?

        /// Where SageMaker calls get their credentials: the keys when given, else the container
        /// credentials endpoint; `nil` when neither is configured.
        public var awsCredentials: AWSCredentialSource.Source? {
            if let awsAccessKeyID, let awsSecretAccessKey {
                return .keys(.init(accessKeyID: awsAccessKeyID, secretAccessKey: awsSecretAccessKey, sessionToken: awsSessionToken))
            }
            let url = awsContainerCredentialsFullURI ?? awsContainerCredentialsRelativeURI.map { "http://169.254.170.2\($0)" }
            return url.map {
                .container(url: $0, token: awsContainerAuthorizationToken, tokenFile: awsContainerAuthorizationTokenFile)
            }
        }
    }

    /// The model behind `/api/v1/score` (`SCORING_MODEL`); `nil` picks the first tabular model.
    public var scoringModel: String?

    /// The sentence-embedding model behind `POST /v1/embeddings`, when one is configured.
    public var embeddings = Embeddings()

    /// A sentence-embedding model served locally through ONNX Runtime.
    public struct Embeddings: Sendable, Equatable {
        /// A sentence-transformers directory with an ONNX export (`EMBEDDING_MODEL_DIR`); `nil`: none.
        public var directory: String?
        /// The name clients give as `model` (`EMBEDDING_MODEL_NAME`); `nil`: the directory's name.
        public var name: String?
        /// Credits per 1,000 input tokens (`EMBEDDING_PRICE_PER_1K`).
        public var pricePer1K = Credits.zero
        /// Texts run together at most (`EMBEDDING_MAX_BATCH`).
        public var maxBatchSize = 32
        /// ONNX Runtime's threads inside one run of the model (`EMBEDDING_THREADS`); 0: one per core.
        public var threads = 0

        /// The threads a run uses: the batcher runs one batch at a time, so by default it may use every core.
        public var runThreads: Int {
            threads > 0 ? threads : max(ProcessInfo.processInfo.activeProcessorCount, 1)
        }

        /// The name served.
        public var servedName: String? {
            directory.map { name ?? ($0 as NSString).lastPathComponent }
        }
    }

    /// The LLM deployment behind `/generate`, `/chat` and the OpenAI-compatible routes.
    public var llm = LLM()

    /// One LLM deployment: an ordered chain of providers (the primary, then a fallback), their
    /// timeouts and breakers, the primary's warm-up polling, and per-token prices.
    public struct LLM: Sendable, Equatable {
        /// The wire format a provider speaks.
        public enum Kind: String, Sendable, CaseIterable {
            case ollama, openai
        }

        /// One provider of the chain.
        public struct Provider: Sendable, Equatable {
            public var kind: Kind
            /// Base URL without the API path, e.g. `http://127.0.0.1:11434`.
            public var url: String
            /// The model asked for, e.g. `gemma3:270m`.
            public var model: String
            /// Sent as a bearer token (OpenAI-compatible servers). A secret: never printed.
            public var apiKey: String?

            /// A provider of `kind` at `url` asked for `model`.
            public init(kind: Kind, url: String, model: String, apiKey: String? = nil) {
                self.kind = kind
                self.url = url
                self.model = model
                self.apiKey = apiKey
            }
        }

        /// The name clients call the deployment by (`LLM_DEPLOYMENT`): `model` in the
        /// OpenAI-compatible routes, the label of the `llm_*` metrics.
        public var deployment = "chat"
        /// The primary (`LLM_PRIMARY_URL`, `LLM_PRIMARY_KIND`, `LLM_PRIMARY_MODEL`, `LLM_PRIMARY_API_KEY`).
        public var primary = Provider(kind: .ollama, url: "", model: "", apiKey: nil)
        /// The fallback (`LLM_FALLBACK_URL`, `LLM_FALLBACK_KIND`, `LLM_FALLBACK_MODEL`, `LLM_FALLBACK_API_KEY`).
        public var fallback = Provider(kind: .openai, url: "", model: "", apiKey: nil)
        /// Fallbacks after `fallback`, tried in order (`providers` of a deployment in YAML).
        public var moreFallbacks: [Provider] = []
        /// Seconds to open a connection to a provider (`LLM_CONNECT_TIMEOUT_S`).
        public var connectTimeoutSeconds = 2.0
        /// Seconds from sending a request to the first token (`LLM_FIRST_TOKEN_TIMEOUT_S`).
        public var firstTokenTimeoutSeconds = 30.0
        /// Seconds a whole request may take (`LLM_TOTAL_TIMEOUT_S`).
        public var totalTimeoutSeconds = 120.0
        /// Seconds between polls of the primary's model list while warming (`PRIMARY_POLL_INTERVAL_S`).
        public var pollIntervalSeconds = 5.0
        /// Seconds of polling before the fallback takes over for good (`PRIMARY_POLL_MAX_S`).
        public var pollMaxSeconds = 600.0
        /// Consecutive failures that open a provider's circuit (`LLM_BREAKER_FAILURES`).
        public var breakerFailures = 5
        /// Seconds a provider's circuit stays open (`LLM_BREAKER_COOLDOWN_S`).
        public var breakerCooldownSeconds = 30.0
        /// Credits per 1,000 prompt tokens (`LLM_PRICE_INPUT_PER_1K`).
        public var inputPricePer1K = Credits.zero
        /// Credits per 1,000 generated tokens (`LLM_PRICE_OUTPUT_PER_1K`).
        public var outputPricePer1K = Credits.zero
        /// Tokens generated when a request names no `max_tokens` (`LLM_MAX_TOKENS`).
        public var defaultMaxTokens = 256
        /// Largest `max_tokens` accepted (`LLM_MAX_TOKENS_LIMIT`); more is a 400.
        public var maxTokensLimit = 4096
        /// LLM tokens (prompt and generated) each API key may use per minute
        /// (`LLM_TOKENS_PER_MINUTE`); 0 turns the token limit off.
        public var tokensPerMinute = 0

        /// The token limit as a rate: a minute's tokens at once, refilled over the minute.
        public var tokenLimit: GCRA? {
            tokensPerMinute > 0 ? GCRA(rate: Double(tokensPerMinute) / 60, burst: tokensPerMinute) : nil
        }

        /// The configured providers, primary first; empty when no LLM is configured.
        public var providers: [Provider] {
            [primary, fallback].filter { !$0.url.isEmpty } + moreFallbacks
        }

        /// Sets the chain from a list, primary first.
        public mutating func setProviders(_ providers: [Provider]) {
            primary = providers.first ?? Provider(kind: .ollama, url: "", model: "")
            fallback = providers.count > 1 ? providers[1] : Provider(kind: .openai, url: "", model: "")
            moreFallbacks = Array(providers.dropFirst(2))
        }

        /// Whether an LLM is configured.
        public var isEnabled: Bool { !providers.isEmpty }

        /// Whether the chain has a provider after the primary.
        public var hasFallback: Bool { providers.count > 1 }
    }

    /// More LLM deployments (`llm.deployments` in YAML), each with its own name, chain and prices;
    /// timeouts, polling, breakers, limits and origins come from `llm`.
    public var moreLLMDeployments: [LLM] = []

    /// Every LLM deployment: `llm` (the default, which `/generate` and `/chat` use when a request
    /// names none) when configured, then `llm.deployments`.
    public var llmDeployments: [LLM] {
        (llm.isEnabled ? [llm] : []) + moreLLMDeployments
    }

    /// Every secret the settings hold (the admin token, static API keys, provider keys, the
    /// passwords of `DATABASE_URL` and `REDIS_URL`): what ``SecretRedactor`` takes out of logs.
    public var secrets: [String] {
        Self.settings.flatMap { $0.secrets(self) } + moreLLMDeployments.flatMap { $0.providers.compactMap(\.apiKey) }
            + auth.tenantKeys.flatMap(\.keys)
    }

    /// The embedded defaults.
    public init() {}

    /// Resolves a path against the working directory.
    public static func absolutePath(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }
}
