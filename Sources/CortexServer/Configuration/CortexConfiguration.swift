public import CortexCore
public import CortexRuntime
import Foundation
public import Logging

/// Everything `cortex serve` needs, with the defaults of the embedded setup.
///
/// Built by ``CortexConfiguration/load(file:environment:)`` from an optional YAML file,
/// overridden by environment variables named as the seed operator guides name them.
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
        /// The demo tenant (`DEMO_TENANT`).
        public var demo = Demo.auto
        /// Seconds a found key is trusted before it is read again (`AUTH_CACHE_TTL_S`).
        public var cacheTTLSeconds = 5.0
        /// The admin API's bearer token (`ADMIN_TOKEN`, or seed 003's `API_ADMIN_KEY`); `nil` leaves
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

    /// How fast each API key may call (seeds 001 and 003).
    public struct RateLimit: Sendable, Equatable {
        /// Sustained requests per second per key (`RATE_LIMIT_RPS`); 0 turns rate limiting off.
        public var requestsPerSecond = 0.0
        /// Requests allowed at once (`RATE_LIMIT_BURST`); 0 means the rate, rounded up.
        public var burst = 0
        /// Redis shared by every replica (`REDIS_URL`, `redis://host:port`); `nil` keeps limits per process.
        public var redisURL: String?
        /// Milliseconds a Redis decision may take before the request is decided locally (`REDIS_TIMEOUT_MS`).
        public var redisTimeoutMilliseconds = 50
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
        /// Credits the demo tenant is given once, when it is created (`DEMO_CREDITS`).
        public var demoCredits = Credits(microcredits: 100 * Credits.scale)

        /// The price of one request to `model`.
        public func price(of model: String) -> Credits {
            prices[model] ?? defaultPrice
        }
    }

    /// The demo tenant's key: seed 002's documented `API_KEYS` default, so its curl examples work.
    public static let demoAPIKey = "demo-api-key-123"
    /// The demo tenant's name.
    public static let demoTenant = "demo"

    public var server = Server()
    public var auth = Auth()
    public var log = Log()
    /// `DATABASE_URL`: `sqlite:PATH`, `sqlite:///ABSOLUTE`, or a plain file path.
    public var database = Database.sqlite(path: Self.absolutePath("data/cortex.db"))
    public var readiness = Readiness()
    public var billing = Billing()
    public var rateLimit = RateLimit()
    /// Models to serve (`models:` in YAML, or `MODEL_PATH`, comma-separated); by default the
    /// bundled lead-scoring model and seed 001's two image classifiers, `vA` and `vB`
    /// (`MODEL_VA_PATH`, `MODEL_VB_PATH` replace their files).
    public var models: [ModelSource] = [
        ModelSource(path: "models/lead-scoring"), ModelSource(name: "vA", path: "models/vA.onnx"),
        ModelSource(name: "vB", path: "models/vB.onnx"),
    ]
    /// ONNX Runtime.
    public var onnx = ONNX()
    /// The model behind `POST /v1/infer` when the request names none (`IMAGE_MODEL`).
    public var imageModel = "vA"
    /// Most pixels an image sent to `POST /v1/infer` may have (`IMAGE_MAX_PIXELS`).
    public var imageMaxPixels = 4096 * 4096

    /// Where ONNX Runtime's library is.
    public struct ONNX: Sendable, Equatable {
        /// `onnx.library` / `ORT_LIBRARY_PATH`; `nil` looks in `ORT_DYLIB_PATH`, `.venv`, then the system's Python.
        public var library: String?
    }
    /// The model behind `/api/v1/score` (`SCORING_MODEL`); `nil` picks the first tabular model.
    public var scoringModel: String?

    /// The embedded defaults.
    public init() {}

    /// Resolves a path against the working directory.
    public static func absolutePath(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }
}
