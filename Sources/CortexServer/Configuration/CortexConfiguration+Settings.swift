import CortexCore
import CortexStore
import Foundation
import Logging

extension CortexConfiguration {
    /// Every setting an operator can make, in the order `config check` lists them. `docs/configuration.md`
    /// documents the same table (a test compares them); the variable names are the public interface.
    static let settings: [Setting] = [
        .word("server.host", "HOST", \.server.host, accepted: "a host name or IP address"),
        .integer("server.port", "PORT", \.server.port, 0...65535),
        .integer("server.max_body_bytes", "MAX_BODY_BYTES", \.server.maxBodyBytes, 1...1 << 30),
        .number("server.drain_timeout_s", "DRAIN_TIMEOUT_S", \.server.drainTimeoutSeconds, 0...3600),
        .number("server.drain_delay_s", "DRAIN_DELAY_S", \.server.drainDelaySeconds, 0...600),
        .number("server.idle_timeout_s", "IDLE_TIMEOUT_S", \.server.idleTimeoutSeconds, 0.1...3600),
        .number("server.request_header_timeout_s", "REQUEST_HEADER_TIMEOUT_S", \.server.requestHeaderTimeoutSeconds, 0.1...600),
        .number("server.request_body_timeout_s", "REQUEST_BODY_TIMEOUT_S", \.server.requestBodyTimeoutSeconds, 0.1...3600),
        .integer("server.max_connections", "MAX_CONNECTIONS", \.server.maxConnections, 1...1_000_000),
        .scalar("server.build_sha", "BUILD_SHA", \.server.buildSHA, accepted: "a commit id of 1-64 letters and digits") { text in
            (1...64).contains(text.count) && text.allSatisfy { $0.isLetter || $0.isNumber } ? text : nil
        },
        .list(
            "server.allowed_hosts", "ALLOWED_HOSTS", \.server.allowedHosts,
            accepted: "comma-separated host names: api.example.com, *.example.com for its subdomains, or *",
            show: { $0.isEmpty ? "(any)" : $0.joined(separator: ",") }
        ) { hosts in hosts.allSatisfy(HostCheckMiddleware<CortexRequestContext>.isValidPattern) ? hosts.map { $0.lowercased() } : nil },
        .list(
            "server.cors_origins", "CORS_ORIGINS", \.server.corsOrigins,
            accepted: "comma-separated origins such as https://app.example.com, or *",
            aliases: ["ALLOWED_ORIGINS"], show: { $0.isEmpty ? "(none)" : $0.joined(separator: ",") }
        ) { origins in
            origins.allSatisfy { $0 == "*" || (($0.hasPrefix("http://") || $0.hasPrefix("https://")) && !$0.hasSuffix("/")) }
                ? origins : nil
        },
        .choice("model_endpoint.provider", "MODEL_ENDPOINT_PROVIDER", \.modelEndpoint.provider),
        .baseURL("model_endpoint.url", "MODEL_ENDPOINT_URL", \.modelEndpoint.url),
        .optional(
            "model_endpoint.model", "MODEL_ENDPOINT_MODEL", \.modelEndpoint.model,
            accepted: "a model name: letters, digits, '-', '_' and '.'", show: { $0 ?? "the local model's name" }
        ) { CortexConfiguration.isValidModelName($0) ? $0 : nil },
        .optional(
            "model_endpoint.api_key", "MODEL_ENDPOINT_API_KEY", \.modelEndpoint.apiKey,
            accepted: "a key of printable characters without spaces",
            secrecy: .value, show: { $0 == nil ? "not set" : "set" }
        ) { text in APIKey.isPlausible(text[...]) ? text : nil },
        .integer("model_endpoint.timeout_ms", "MODEL_ENDPOINT_TIMEOUT_MS", \.modelEndpoint.timeoutMilliseconds, 1...600_000),
        .optional(
            "model_endpoint.sagemaker_endpoint_name", "SAGEMAKER_ENDPOINT_NAME", \.modelEndpoint.sageMakerEndpointName,
            accepted: "a SageMaker endpoint name: 1-63 letters, digits and '-', starting with a letter or digit", show: { $0 ?? "not set" }
        ) { text in
            (1...63).contains(text.count) && text.first != "-"
                && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
                ? text : nil
        },
        .choice("model_endpoint.sagemaker_content_type", "SAGEMAKER_CONTENT_TYPE", \.modelEndpoint.sageMakerContentType),
        .optional(
            "model_endpoint.aws_region", "AWS_REGION", \.modelEndpoint.awsRegion, accepted: "an AWS region such as us-east-1",
            aliases: ["AWS_DEFAULT_REGION"], show: { $0 ?? "not set" }
        ) { text in
            (1...32).contains(text.count) && text.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") } ? text : nil
        },
        .optional(
            "model_endpoint.aws_endpoint_url", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", \.modelEndpoint.awsEndpointURL,
            accepted: "http://host:port or https://host:port", aliases: ["AWS_ENDPOINT_URL"],
            show: { $0 ?? "https://runtime.sagemaker.{AWS_REGION}.amazonaws.com" }, parse: Setting.parseBaseURL),
        .optional(
            "model_endpoint.aws_access_key_id", "AWS_ACCESS_KEY_ID", \.modelEndpoint.awsAccessKeyID,
            accepted: "an access key id: 16-128 letters and digits", secrecy: .value, show: { $0 == nil ? "not set" : "set" }
        ) { text in (16...128).contains(text.count) && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) } ? text : nil },
        .optional(
            "model_endpoint.aws_secret_access_key", "AWS_SECRET_ACCESS_KEY", \.modelEndpoint.awsSecretAccessKey,
            accepted: "a secret key of printable characters without spaces", secrecy: .value, show: { $0 == nil ? "not set" : "set" }
        ) { text in (1...256).contains(text.count) && !text.contains(where: \.isWhitespace) ? text : nil },
        .optional(
            "model_endpoint.aws_session_token", "AWS_SESSION_TOKEN", \.modelEndpoint.awsSessionToken,
            accepted: "a session token of printable characters without spaces", secrecy: .value, show: { $0 == nil ? "not set" : "set" }
        ) { text in (1...8192).contains(text.count) && !text.contains(where: \.isWhitespace) ? text : nil },
        .optional(
            "model_endpoint.aws_container_credentials_full_uri", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            \.modelEndpoint.awsContainerCredentialsFullURI, accepted: "the container credentials endpoint's http:// or https:// URL",
            show: { $0 ?? "not set" }
        ) { text in Setting.parseURL(text) },
        .optional(
            "model_endpoint.aws_container_credentials_relative_uri", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            \.modelEndpoint.awsContainerCredentialsRelativeURI, accepted: "a path on http://169.254.170.2, starting with /",
            show: { $0 ?? "not set" }
        ) { text in text.hasPrefix("/") && !text.contains(where: \.isWhitespace) ? text : nil },
        .optional(
            "model_endpoint.aws_container_authorization_token", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            \.modelEndpoint.awsContainerAuthorizationToken, accepted: "a token of printable characters", secrecy: .value,
            show: { $0 == nil ? "not set" : "set" }
        ) { text in text.isEmpty || text.contains(where: \.isNewline) ? nil : text },
        .optional(
            "model_endpoint.aws_container_authorization_token_file", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            \.modelEndpoint.awsContainerAuthorizationTokenFile, accepted: "the path of the file holding the token",
            show: { $0 ?? "not set" }
        ) { text in text.isEmpty ? nil : text },
        .optional(
            "model_endpoint.azure_url", "AZURE_ML_ENDPOINT_URL", \.modelEndpoint.azureURL,
            accepted: "the online endpoint's scoring URI, https://ENDPOINT.REGION.inference.ml.azure.com/score",
            show: { $0 ?? "not set" }
        ) { text in Setting.parseURL(text) },
        .optional(
            "model_endpoint.azure_api_key", "AZURE_ML_API_KEY", \.modelEndpoint.azureAPIKey,
            accepted: "the endpoint's key: printable characters without spaces", secrecy: .value, show: { $0 == nil ? "not set" : "set" }
        ) { text in (1...1024).contains(text.count) && !text.contains(where: \.isWhitespace) ? text : nil },
        .optional(
            "model_endpoint.azure_deployment", "AZURE_ML_DEPLOYMENT_NAME", \.modelEndpoint.azureDeployment,
            accepted: "a deployment name: 1-32 letters, digits and '-'", show: { $0 ?? "not set (the endpoint's traffic rules)" }
        ) { text in
            (1...32).contains(text.count) && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") } ? text : nil
        },
        .choice("log.level", "LOG_LEVEL", \.log.level, synonyms: ["warn": .warning]),
        .choice("log.format", "LOG_FORMAT", \.log.format),
        .optional(
            "traces.otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", \.traces.endpoint,
            accepted: "the OpenTelemetry collector's http://host:port or https://host:port", show: { $0 ?? "not set (tracing off)" },
            parse: Setting.parseBaseURL),
        .choice("traces.otlp_protocol", "OTEL_EXPORTER_OTLP_PROTOCOL", \.traces.exportProtocol),
        .word(
            "traces.service_name", "OTEL_SERVICE_NAME", \.traces.serviceName, accepted: "a service name of 1-128 characters without spaces",
            limit: 128),
        .choice("traces.sampler", "OTEL_TRACES_SAMPLER", \.traces.sampler),
        .number("traces.sampler_arg", "OTEL_TRACES_SAMPLER_ARG", \.traces.samplerRatio, 0...1, what: "a ratio"),
        .scalar(
            "database.url", "DATABASE_URL", \.database,
            accepted: "sqlite:PATH, sqlite:///ABSOLUTE/PATH, a file path, or postgres://user:password@host:port/database",
            secrecy: .password, show: \.url, parse: Database.init(url:)),
        .integer("readiness.min_free_disk_mb", "MIN_FREE_DISK_MB", \.readiness.minFreeDiskMB, 0...10_000_000),
        .number("readiness.interval_s", "READINESS_INTERVAL_S", \.readiness.monitorIntervalSeconds, 0.1...3600),
        .flag("status.fail_on_legacy", "FAIL_ON_LEGACY", \.status.failOnLegacy),
        .optional(
            "status.legacy_sunset", "LEGACY_SUNSET", \.status.legacySunset, accepted: "a date, YYYY-MM-DD (UTC)",
            show: { $0.map { $0.ISO8601Format(.iso8601.year().month().day()) } ?? "not set" }
        ) { text in
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withFullDate]
            // The formatter rolls 2027-02-30 over to March: only a date that reads back the same is one.
            guard text.count == 10, let date = formatter.date(from: text), formatter.string(from: date) == text else { return nil }
            return date
        },
        .flag("auth.require_api_key", "REQUIRE_API_KEY", \.auth.requireAPIKey),
        .list(
            "auth.api_keys", "API_KEYS", \.auth.apiKeys, accepted: "comma-separated keys of 8-256 printable characters without spaces",
            secrecy: .value, show: { "\($0.count) key(s)" }
        ) { keys in keys.allSatisfy { APIKey.isPlausible($0[...]) } ? keys : nil },
        .choice(
            "auth.demo", "DEMO_TENANT", \.auth.demo, synonyms: ["true": .on, "1": .on, "yes": .on, "false": .off, "0": .off, "no": .off]),
        .number("auth.cache_ttl_s", "AUTH_CACHE_TTL_S", \.auth.cacheTTLSeconds, 0...300),
        .optional(
            "auth.admin_token", "ADMIN_TOKEN", \.auth.adminToken, accepted: "at least 16 printable characters without spaces",
            aliases: ["API_ADMIN_KEY"], secrecy: .value, show: { $0 == nil ? "not set" : "set" }
        ) { text in text.count >= 16 && APIKey.isPlausible(text[...]) ? text : nil },
        .list(
            "billing.prices", "MODEL_PRICES", \.billing.prices,
            accepted: "comma-separated MODEL=CREDITS pairs, credits a decimal with at most 6 places, e.g. lead-scoring=0.001",
            show: { $0.isEmpty ? "(none)" : $0.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") },
            parse: prices(_:)),
        .credits("billing.default_price", "DEFAULT_PRICE", \.billing.defaultPrice, what: "credits per request"),
        .number("billing.hold_ttl_s", "HOLD_TTL_S", \.billing.holdTTLSeconds, 1...86_400),
        .number("billing.sweep_interval_s", "HOLD_SWEEP_INTERVAL_S", \.billing.sweepIntervalSeconds, 0.1...3600),
        .number("billing.idempotency_ttl_s", "IDEMPOTENCY_TTL_S", \.billing.idempotencyTTLSeconds, 1...31_536_000),
        .integer("billing.lease_holds", "CREDIT_LEASE_HOLDS", \.billing.leaseHolds, 0...1_000_000),
        .credits("billing.demo_credits", "DEMO_CREDITS", \.billing.demoCredits),
        .number("rate_limit.rps", "RATE_LIMIT_RPS", \.rateLimit.requestsPerSecond, 0...1_000_000, what: "requests per second (0 is off)"),
        .integer("rate_limit.burst", "RATE_LIMIT_BURST", \.rateLimit.burst, 0...1_000_000),
        .list(
            "rate_limit.overrides", "RATE_LIMIT_OVERRIDES", \.rateLimit.overrides,
            accepted: "comma-separated TENANT/MODEL=RPS[:BURST], '*' for any tenant or model, e.g. acme/lead-scoring=50:100",
            show: {
                $0.isEmpty ? "(none)" : $0.map { "\($0.tenant)/\($0.model)=\($0.requestsPerSecond):\($0.burst)" }.joined(separator: ",")
            },
            parse: overrides(_:)),
        .optional(
            "rate_limit.redis_url", "REDIS_URL", \.rateLimit.redisURL, accepted: "redis://[[user]:password@]host[:port][/database]",
            secrecy: .password, show: { $0 ?? "not set (limits per process)" }
        ) { text in (try? RedisClient.location(of: text)) != nil ? text : nil },
        .optional(
            "rate_limit.redis_tls_ca_file", "REDIS_TLS_CA_FILE", \.rateLimit.redisTLS.ca,
            accepted: "the path of a PEM file of CA certificates",
            show: { $0 ?? "not set (the system's roots)" }
        ) { text in text.isEmpty ? nil : text },
        .optional(
            "rate_limit.redis_tls_cert_file", "REDIS_TLS_CERT_FILE", \.rateLimit.redisTLS.certificate,
            accepted: "the path of a PEM client certificate", show: { $0 ?? "not set" }
        ) { text in text.isEmpty ? nil : text },
        .optional(
            "rate_limit.redis_tls_key_file", "REDIS_TLS_KEY_FILE", \.rateLimit.redisTLS.key,
            accepted: "the path of the client certificate's PEM key",
            show: { $0 ?? "not set" }
        ) { text in text.isEmpty ? nil : text },
        .integer("rate_limit.redis_timeout_ms", "REDIS_TIMEOUT_MS", \.rateLimit.redisTimeoutMilliseconds, 1...10_000, what: "milliseconds"),
        .optional(
            "onnx.library", "ORT_LIBRARY_PATH", \.onnx.library, accepted: "the path of libonnxruntime.so",
            show: { $0 ?? "(found: ORT_DYLIB_PATH, .venv, then the system's python3)" }
        ) { text in text.isEmpty ? nil : text },
        .optional(
            "embeddings.model_dir", "EMBEDDING_MODEL_DIR", \.embeddings.directory,
            accepted: "a sentence-transformers directory with onnx/model.onnx and tokenizer.json",
            show: { $0 ?? "not set (no /v1/embeddings)" }
        ) { text in text.isEmpty ? nil : text },
        .optional(
            "embeddings.model_name", "EMBEDDING_MODEL_NAME", \.embeddings.name,
            accepted: "1-128 letters, digits and . _ - : /", show: { $0 ?? "the directory's name" }
        ) { text in
            (1...128).contains(text.count) && text.allSatisfy({ $0.isLetter || $0.isNumber || "._-:/".contains($0) }) ? text : nil
        },
        .credits("embeddings.price_per_1k", "EMBEDDING_PRICE_PER_1K", \.embeddings.pricePer1K, what: "credits per 1,000 input tokens"),
        .integer("embeddings.max_batch_size", "EMBEDDING_MAX_BATCH", \.embeddings.maxBatchSize, 1...1024),
        .integer(
            "embeddings.threads", "EMBEDDING_THREADS", \.embeddings.threads, 0...256,
            what: "threads per run of the model (0: one per core)"
        ),
        .modelName("image.model", "IMAGE_MODEL", \.imageModel),
        .word("repository.directory", "MODEL_REPOSITORY", \.modelRepository, accepted: "the directory models are loaded from", limit: 4096),
        .integer("image.max_pixels", "IMAGE_MAX_PIXELS", \.imageMaxPixels, 1...(1 << 28)),
        .number("traffic.ab_weight_a", "AB_WEIGHT_A", \.traffic.weightA, 0...1_000_000, what: "a weight"),
        .number("traffic.ab_weight_b", "AB_WEIGHT_B", \.traffic.weightB, 0...1_000_000, what: "a weight"),
        .optional(
            "traffic.sticky_cookie", "STICKY_COOKIE", \.traffic.stickyCookie, accepted: "a cookie name: 1-64 letters, digits, '-' and '_'",
            show: { $0 ?? "not set" }
        ) { text in
            (1...64).contains(text.count) && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
                ? text : nil
        },
        .flag("traffic.shadow_enabled", "SHADOW_ENABLED", \.traffic.shadowEnabled),
        .integer("traffic.shadow_queue_depth", "SHADOW_QUEUE_DEPTH", \.traffic.shadowQueueDepth, 1...100_000, what: "copies"),
        .flag("traffic.canary_enabled", "CANARY_ENABLED", \.traffic.canaryEnabled),
        .list(
            "traffic.canary_steps", "CANARY_STEPS", \.traffic.canary.steps,
            accepted: "comma-separated increasing percentages above 0 and at most 100, e.g. 5,25,50,100",
            show: { $0.map(Setting.format).joined(separator: ",") }
        ) { texts in
            let parts = texts.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
            let steps = parts.compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard steps.count == parts.count, !steps.isEmpty, steps.allSatisfy({ $0 > 0 && $0 <= 100 }),
                zip(steps, steps.dropFirst()).allSatisfy({ $0 < $1 })
            else { return nil }
            return steps
        },
        .integer("traffic.canary_min_requests", "CANARY_MIN_REQUESTS", \.traffic.canary.minRequests, 1...10_000_000, what: "requests"),
        .number(
            "traffic.canary_max_error_rate_increase", "CANARY_MAX_ERROR_RATE_INCREASE", \.traffic.canary.maxErrorRateIncrease, 0...1,
            what: "a fraction"),
        .number(
            "traffic.canary_max_latency_ratio", "CANARY_MAX_LATENCY_RATIO", \.traffic.canary.maxLatencyRatio, 1...1000, what: "a ratio"),
        .number(
            "traffic.canary_latency_allowance_ms", "CANARY_LATENCY_ALLOWANCE_MS", \.traffic.canary.latencyAllowanceMilliseconds,
            0...60_000, what: "milliseconds"),
        .optional("scoring.model", "SCORING_MODEL", \.scoringModel, accepted: "a model name", show: { $0 ?? "(first tabular model)" }) {
            text in isValidModelName(text) ? text : nil
        },
        .modelName("llm.deployment", "LLM_DEPLOYMENT", \.llm.deployment),
        .baseURL("llm.primary_url", "LLM_PRIMARY_URL", \.llm.primary.url),
        .choice("llm.primary_kind", "LLM_PRIMARY_KIND", \.llm.primary.kind),
        .word("llm.primary_model", "LLM_PRIMARY_MODEL", \.llm.primary.model, accepted: "the provider's model name"),
        .word("llm.primary_api_key", "LLM_PRIMARY_API_KEY", \.llm.primary.apiKeyText, accepted: "a key without spaces", secrecy: .value),
        .baseURL("llm.fallback_url", "LLM_FALLBACK_URL", \.llm.fallback.url),
        .choice("llm.fallback_kind", "LLM_FALLBACK_KIND", \.llm.fallback.kind),
        .word("llm.fallback_model", "LLM_FALLBACK_MODEL", \.llm.fallback.model, accepted: "the provider's model name"),
        .word(
            "llm.fallback_api_key", "LLM_FALLBACK_API_KEY", \.llm.fallback.apiKeyText, accepted: "a key without spaces", secrecy: .value,
            aliases: ["OPENAI_API_KEY"]),
        .number("llm.connect_timeout_s", "LLM_CONNECT_TIMEOUT_S", \.llm.connectTimeoutSeconds, 0.01...600),
        .number("llm.first_token_timeout_s", "LLM_FIRST_TOKEN_TIMEOUT_S", \.llm.firstTokenTimeoutSeconds, 0.01...3600),
        .number("llm.total_timeout_s", "LLM_TOTAL_TIMEOUT_S", \.llm.totalTimeoutSeconds, 0.01...86_400),
        .number("llm.poll_interval_s", "PRIMARY_POLL_INTERVAL_S", \.llm.pollIntervalSeconds, 0.01...3600),
        .number("llm.poll_max_s", "PRIMARY_POLL_MAX_S", \.llm.pollMaxSeconds, 0...604_800),
        .integer("llm.breaker_failures", "LLM_BREAKER_FAILURES", \.llm.breakerFailures, 1...1000),
        .number("llm.breaker_cooldown_s", "LLM_BREAKER_COOLDOWN_S", \.llm.breakerCooldownSeconds, 0...86_400),
        .credits("llm.price_input_per_1k", "LLM_PRICE_INPUT_PER_1K", \.llm.inputPricePer1K, what: "credits per 1,000 prompt tokens"),
        .credits("llm.price_output_per_1k", "LLM_PRICE_OUTPUT_PER_1K", \.llm.outputPricePer1K, what: "credits per 1,000 generated tokens"),
        .integer("llm.max_tokens", "LLM_MAX_TOKENS", \.llm.defaultMaxTokens, 1...1_000_000),
        .integer("llm.max_tokens_limit", "LLM_MAX_TOKENS_LIMIT", \.llm.maxTokensLimit, 1...1_000_000),
        .integer(
            "llm.tokens_per_minute", "LLM_TOKENS_PER_MINUTE", \.llm.tokensPerMinute, 0...1_000_000_000,
            what: "tokens per API key per minute (0 is off), an integer"),

    ]

    /// The declared setting with YAML key `key`; a key not declared is a programming error.
    static func setting(_ key: String) -> Setting {
        guard let setting = settings.first(where: { $0.key == key }) else { preconditionFailure("no setting \(key)") }
        return setting
    }

    /// `lead-scoring=0.001` pairs, each model once.
    private static func prices(_ pairs: [String]) -> [String: Credits]? {
        var prices: [String: Credits] = [:]
        for pair in pairs {
            let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, isValidModelName(parts[0]), prices[parts[0]] == nil, let price = Setting.nonNegativeCredits(parts[1])
            else { return nil }
            prices[parts[0]] = price
        }
        return prices
    }

    /// `TENANT/MODEL=RPS[:BURST]` entries; the burst defaults to the rate, rounded up.
    private static func overrides(_ entries: [String]) -> [RateLimit.Override]? {
        var overrides: [RateLimit.Override] = []
        for entry in entries {
            let parts = entry.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { return nil }
            let scope = parts[0].split(separator: "/", maxSplits: 1).map(String.init)
            let numbers = parts[1].split(separator: ":", maxSplits: 1).map(String.init)
            guard scope.count == 2, scope[0] == "*" || Tenant.isValidName(scope[0]), scope[1] == "*" || isValidModelName(scope[1]),
                let rate = Double(numbers[0]), rate > 0, rate <= 1_000_000
            else { return nil }
            let burst = numbers.count == 2 ? Int(numbers[1]) : Int(rate.rounded(.up))
            guard let burst, (1...1_000_000).contains(burst) else { return nil }
            overrides.append(.init(tenant: scope[0], model: scope[1], requestsPerSecond: rate, burst: burst))
        }
        return overrides
    }

    static func isValidModelName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 128
            && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0) }
    }
}

extension CortexConfiguration.LLM.Provider {
    /// `apiKey` as a setting writes it: empty is unset.
    var apiKeyText: String {
        get { apiKey ?? "" }
        set { apiKey = newValue.isEmpty ? nil : newValue }
    }
}

extension CortexConfiguration.Database {
    /// The URL form, as `DATABASE_URL` takes it.
    var url: String {
        switch self {
        case .sqlite(let path): "sqlite://\(path)"
        case .postgres(let url): url
        }
    }

    /// Parses `DATABASE_URL`: `sqlite:PATH`, `sqlite://PATH`, `sqlite:///ABSOLUTE`, or a plain path.
    init?(url: String) {
        let value = url.trimmingCharacters(in: .whitespaces)
        guard !value.isEmpty else { return nil }
        if value.hasPrefix("postgres://") || value.hasPrefix("postgresql://") {
            guard let components = URLComponents(string: value), let host = components.host, !host.isEmpty else { return nil }
            self = .postgres(url: value)
            return
        }
        var path = value
        for prefix in ["sqlite://", "sqlite:"] where path.hasPrefix(prefix) {
            path.removeFirst(prefix.count)
            break
        }
        if path.contains("://") || path.isEmpty { return nil }
        self = .sqlite(path: CortexConfiguration.absolutePath(path))
    }
}
