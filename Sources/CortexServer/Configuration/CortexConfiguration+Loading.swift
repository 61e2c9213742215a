import CortexCore
public import CortexRuntime
import CortexStore
import Foundation
import Logging
import Yams

extension CortexConfiguration {
    /// One scalar setting: its YAML path, its environment variable and how to apply a value.
    struct Setting: Sendable {
        var yamlPath: String
        var environment: String
        var accepted: String
        var apply: @Sendable (inout CortexConfiguration, String) -> Bool
    }

    /// Every scalar setting. `docs/configuration.md` lists the same table for operators.
    static let settings: [Setting] = [
        Setting(yamlPath: "server.host", environment: "HOST", accepted: "a host name or IP address") { config, value in
            guard !value.isEmpty, !value.contains(where: \.isWhitespace) else { return false }
            config.server.host = value
            return true
        },
        Setting(yamlPath: "server.port", environment: "PORT", accepted: "an integer from 0 to 65535") { config, value in
            parse(value, into: &config.server.port, in: 0...65535)
        },
        Setting(yamlPath: "server.max_body_bytes", environment: "MAX_BODY_BYTES", accepted: "an integer from 1 to 1073741824") {
            config,
            value in
            parse(value, into: &config.server.maxBodyBytes, in: 1...1 << 30)
        },
        Setting(yamlPath: "server.drain_timeout_s", environment: "DRAIN_TIMEOUT_S", accepted: "seconds from 0 to 3600") {
            config,
            value in
            parse(value, into: &config.server.drainTimeoutSeconds, in: 0...3600)
        },
        Setting(yamlPath: "server.drain_delay_s", environment: "DRAIN_DELAY_S", accepted: "seconds from 0 to 600") { config, value in
            parse(value, into: &config.server.drainDelaySeconds, in: 0...600)
        },
        Setting(yamlPath: "server.idle_timeout_s", environment: "IDLE_TIMEOUT_S", accepted: "seconds from 0.1 to 3600") { config, value in
            parse(value, into: &config.server.idleTimeoutSeconds, in: 0.1...3600)
        },
        Setting(
            yamlPath: "server.request_header_timeout_s", environment: "REQUEST_HEADER_TIMEOUT_S", accepted: "seconds from 0.1 to 600"
        ) { config, value in
            parse(value, into: &config.server.requestHeaderTimeoutSeconds, in: 0.1...600)
        },
        Setting(
            yamlPath: "server.request_body_timeout_s", environment: "REQUEST_BODY_TIMEOUT_S", accepted: "seconds from 0.1 to 3600"
        ) { config, value in
            parse(value, into: &config.server.requestBodyTimeoutSeconds, in: 0.1...3600)
        },
        Setting(yamlPath: "server.max_connections", environment: "MAX_CONNECTIONS", accepted: "an integer from 1 to 1000000") {
            config, value in
            guard parse(value, into: &config.server.maxConnections, in: 1...1_000_000) else { return false }
            config.server.maxConnectionsSet = true
            return true
        },
        Setting(yamlPath: "server.build_sha", environment: "BUILD_SHA", accepted: "a commit id of 1-64 letters and digits") {
            config,
            value in
            guard (1...64).contains(value.count), value.allSatisfy({ $0.isLetter || $0.isNumber }) else { return false }
            config.server.buildSHA = value
            return true
        },
        Setting(
            yamlPath: "log.level",
            environment: "LOG_LEVEL",
            accepted: "one of trace, debug, info, notice, warning, error, critical"
        ) { config, value in
            let name = value.lowercased() == "warn" ? "warning" : value.lowercased()
            guard let level = Logger.Level(rawValue: name) else { return false }
            config.log.level = level
            return true
        },
        Setting(yamlPath: "log.format", environment: "LOG_FORMAT", accepted: "one of json, text") { config, value in
            guard let format = Log.Format(rawValue: value.lowercased()) else { return false }
            config.log.format = format
            return true
        },
        Setting(
            yamlPath: "database.url",
            environment: "DATABASE_URL",
            accepted: "sqlite:PATH, sqlite:///ABSOLUTE/PATH, a file path, or postgres://user:password@host:port/database"
        ) { config, value in
            guard let database = Database(url: value) else { return false }
            config.database = database
            return true
        },
        Setting(yamlPath: "readiness.min_free_disk_mb", environment: "MIN_FREE_DISK_MB", accepted: "an integer from 0 to 10000000") {
            config,
            value in
            parse(value, into: &config.readiness.minFreeDiskMB, in: 0...10_000_000)
        },
        Setting(yamlPath: "readiness.interval_s", environment: "READINESS_INTERVAL_S", accepted: "seconds from 0.1 to 3600") {
            config,
            value in
            parse(value, into: &config.readiness.monitorIntervalSeconds, in: 0.1...3600)
        },
        Setting(yamlPath: "auth.require_api_key", environment: "REQUIRE_API_KEY", accepted: "true or false") { config, value in
            parse(value, into: &config.auth.requireAPIKey)
        },
        Setting(
            yamlPath: "auth.api_keys",
            environment: "API_KEYS",
            accepted: "comma-separated keys of 8-256 printable characters without spaces"
        ) { config, value in
            let keys = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard keys.allSatisfy({ APIKey.isPlausible($0[...]) }) else { return false }
            config.auth.apiKeys = keys
            return true
        },
        Setting(yamlPath: "auth.demo", environment: "DEMO_TENANT", accepted: "auto, on or off") { config, value in
            switch value.lowercased() {
            case "true", "1", "yes": config.auth.demo = .on
            case "false", "0", "no": config.auth.demo = .off
            default:
                guard let demo = Auth.Demo(rawValue: value.lowercased()) else { return false }
                config.auth.demo = demo
            }
            return true
        },
        Setting(yamlPath: "auth.cache_ttl_s", environment: "AUTH_CACHE_TTL_S", accepted: "seconds from 0 to 300") { config, value in
            parse(value, into: &config.auth.cacheTTLSeconds, in: 0...300)
        },
        Setting(yamlPath: "auth.admin_token", environment: "ADMIN_TOKEN", accepted: "at least 16 printable characters without spaces") {
            config,
            value in
            guard value.count >= 16, APIKey.isPlausible(value[...]) else { return false }
            config.auth.adminToken = value
            return true
        },
        Setting(
            yamlPath: "billing.prices",
            environment: "MODEL_PRICES",
            accepted: "comma-separated MODEL=CREDITS pairs, credits a decimal with at most 6 places, e.g. lead-scoring=0.001"
        ) { config, value in
            var prices: [String: Credits] = [:]
            for pair in value.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, isValidModelName(parts[0]), let price = Credits(decimal: parts[1]), price >= .zero,
                    prices[parts[0]] == nil
                else { return false }
                prices[parts[0]] = price
            }
            config.billing.prices = prices
            return true
        },
        Setting(
            yamlPath: "billing.default_price",
            environment: "DEFAULT_PRICE",
            accepted: "credits per request, a decimal of at least 0 with at most 6 places"
        ) { config, value in
            parse(value, into: &config.billing.defaultPrice)
        },
        Setting(yamlPath: "billing.hold_ttl_s", environment: "HOLD_TTL_S", accepted: "seconds from 1 to 86400") { config, value in
            parse(value, into: &config.billing.holdTTLSeconds, in: 1...86_400)
        },
        Setting(yamlPath: "billing.sweep_interval_s", environment: "HOLD_SWEEP_INTERVAL_S", accepted: "seconds from 0.1 to 3600") {
            config,
            value in
            parse(value, into: &config.billing.sweepIntervalSeconds, in: 0.1...3600)
        },
        Setting(
            yamlPath: "billing.demo_credits",
            environment: "DEMO_CREDITS",
            accepted: "credits, a decimal of at least 0 with at most 6 places"
        ) { config, value in
            parse(value, into: &config.billing.demoCredits)
        },
        Setting(
            yamlPath: "rate_limit.rps",
            environment: "RATE_LIMIT_RPS",
            accepted: "requests per second from 0 (off) to 1000000"
        ) { config, value in
            parse(value, into: &config.rateLimit.requestsPerSecond, in: 0...1_000_000)
        },
        Setting(yamlPath: "rate_limit.burst", environment: "RATE_LIMIT_BURST", accepted: "an integer from 0 to 1000000") {
            config,
            value in
            parse(value, into: &config.rateLimit.burst, in: 0...1_000_000)
        },
        Setting(
            yamlPath: "rate_limit.overrides",
            environment: "RATE_LIMIT_OVERRIDES",
            accepted: "comma-separated TENANT/MODEL=RPS[:BURST], '*' for any tenant or model, e.g. acme/lead-scoring=50:100"
        ) { config, value in
            var overrides: [RateLimit.Override] = []
            for item in value.split(separator: ",") {
                let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2 else { return false }
                let scope = parts[0].split(separator: "/", maxSplits: 1).map(String.init)
                let numbers = parts[1].split(separator: ":", maxSplits: 1).map(String.init)
                guard scope.count == 2, scope[0] == "*" || Tenant.isValidName(scope[0]), scope[1] == "*" || isValidModelName(scope[1]),
                    let rate = Double(numbers[0]), rate > 0, rate <= 1_000_000
                else { return false }
                let burst = numbers.count == 2 ? Int(numbers[1]) : Int(rate.rounded(.up))
                guard let burst, (1...1_000_000).contains(burst) else { return false }
                overrides.append(.init(tenant: scope[0], model: scope[1], requestsPerSecond: rate, burst: burst))
            }
            config.rateLimit.overrides = overrides
            return true
        },
        Setting(yamlPath: "rate_limit.redis_url", environment: "REDIS_URL", accepted: "redis://[[user]:password@]host[:port][/database]") {
            config, value in
            guard (try? RedisClient(url: value)) != nil else { return false }
            config.rateLimit.redisURL = value
            return true
        },
        Setting(yamlPath: "rate_limit.redis_timeout_ms", environment: "REDIS_TIMEOUT_MS", accepted: "milliseconds from 1 to 10000") {
            config,
            value in
            parse(value, into: &config.rateLimit.redisTimeoutMilliseconds, in: 1...10_000)
        },
        Setting(yamlPath: "onnx.library", environment: "ORT_LIBRARY_PATH", accepted: "the path of libonnxruntime.so") { config, value in
            guard !value.isEmpty else { return false }
            config.onnx.library = value
            return true
        },
        Setting(yamlPath: "image.model", environment: "IMAGE_MODEL", accepted: "a model name") { config, value in
            guard isValidModelName(value) else { return false }
            config.imageModel = value
            return true
        },
        Setting(yamlPath: "image.max_pixels", environment: "IMAGE_MAX_PIXELS", accepted: "an integer from 1 to 268435456") {
            config,
            value in
            parse(value, into: &config.imageMaxPixels, in: 1...(1 << 28))
        },
        Setting(yamlPath: "llm.deployment", environment: "LLM_DEPLOYMENT", accepted: "a model name") { config, value in
            guard isValidModelName(value) else { return false }
            config.llm.deployment = value
            return true
        },
        Setting(yamlPath: "llm.primary_url", environment: "LLM_PRIMARY_URL", accepted: "http://host:port or https://host:port") {
            config,
            value in
            parse(url: value, into: &config.llm.primary.url)
        },
        Setting(yamlPath: "llm.primary_kind", environment: "LLM_PRIMARY_KIND", accepted: "ollama or openai") { config, value in
            parse(value, into: &config.llm.primary.kind)
        },
        Setting(yamlPath: "llm.primary_model", environment: "LLM_PRIMARY_MODEL", accepted: "the provider's model name") {
            config,
            value in
            parse(llmModel: value, into: &config.llm.primary.model)
        },
        Setting(yamlPath: "llm.primary_api_key", environment: "LLM_PRIMARY_API_KEY", accepted: "a key without spaces") { config, value in
            guard !value.isEmpty, !value.contains(where: \.isWhitespace) else { return false }
            config.llm.primary.apiKey = value
            return true
        },
        Setting(yamlPath: "llm.fallback_url", environment: "LLM_FALLBACK_URL", accepted: "http://host:port or https://host:port") {
            config,
            value in
            parse(url: value, into: &config.llm.fallback.url)
        },
        Setting(yamlPath: "llm.fallback_kind", environment: "LLM_FALLBACK_KIND", accepted: "ollama or openai") { config, value in
            parse(value, into: &config.llm.fallback.kind)
        },
        Setting(yamlPath: "llm.fallback_model", environment: "LLM_FALLBACK_MODEL", accepted: "the provider's model name") {
            config,
            value in
            parse(llmModel: value, into: &config.llm.fallback.model)
        },
        Setting(yamlPath: "llm.fallback_api_key", environment: "LLM_FALLBACK_API_KEY", accepted: "a key without spaces") {
            config,
            value in
            guard !value.isEmpty, !value.contains(where: \.isWhitespace) else { return false }
            config.llm.fallback.apiKey = value
            return true
        },
        Setting(yamlPath: "llm.connect_timeout_s", environment: "LLM_CONNECT_TIMEOUT_S", accepted: "seconds from 0.01 to 600") {
            config,
            value in
            parse(value, into: &config.llm.connectTimeoutSeconds, in: 0.01...600)
        },
        Setting(yamlPath: "llm.first_token_timeout_s", environment: "LLM_FIRST_TOKEN_TIMEOUT_S", accepted: "seconds from 0.01 to 3600") {
            config,
            value in
            parse(value, into: &config.llm.firstTokenTimeoutSeconds, in: 0.01...3600)
        },
        Setting(yamlPath: "llm.total_timeout_s", environment: "LLM_TOTAL_TIMEOUT_S", accepted: "seconds from 0.01 to 86400") {
            config,
            value in
            parse(value, into: &config.llm.totalTimeoutSeconds, in: 0.01...86_400)
        },
        Setting(yamlPath: "llm.poll_interval_s", environment: "PRIMARY_POLL_INTERVAL_S", accepted: "seconds from 0.01 to 3600") {
            config,
            value in
            parse(value, into: &config.llm.pollIntervalSeconds, in: 0.01...3600)
        },
        Setting(yamlPath: "llm.poll_max_s", environment: "PRIMARY_POLL_MAX_S", accepted: "seconds from 0 to 604800") { config, value in
            parse(value, into: &config.llm.pollMaxSeconds, in: 0...604_800)
        },
        Setting(yamlPath: "llm.breaker_failures", environment: "LLM_BREAKER_FAILURES", accepted: "an integer from 1 to 1000") {
            config,
            value in
            parse(value, into: &config.llm.breakerFailures, in: 1...1000)
        },
        Setting(yamlPath: "llm.breaker_cooldown_s", environment: "LLM_BREAKER_COOLDOWN_S", accepted: "seconds from 0 to 86400") {
            config,
            value in
            parse(value, into: &config.llm.breakerCooldownSeconds, in: 0...86_400)
        },
        Setting(
            yamlPath: "llm.price_input_per_1k",
            environment: "LLM_PRICE_INPUT_PER_1K",
            accepted: "credits per 1,000 prompt tokens, a decimal of at least 0 with at most 6 places"
        ) { config, value in
            parse(value, into: &config.llm.inputPricePer1K)
        },
        Setting(
            yamlPath: "llm.price_output_per_1k",
            environment: "LLM_PRICE_OUTPUT_PER_1K",
            accepted: "credits per 1,000 generated tokens, a decimal of at least 0 with at most 6 places"
        ) { config, value in
            parse(value, into: &config.llm.outputPricePer1K)
        },
        Setting(yamlPath: "llm.max_tokens", environment: "LLM_MAX_TOKENS", accepted: "an integer from 1 to 1000000") { config, value in
            parse(value, into: &config.llm.defaultMaxTokens, in: 1...1_000_000)
        },
        Setting(yamlPath: "llm.max_tokens_limit", environment: "LLM_MAX_TOKENS_LIMIT", accepted: "an integer from 1 to 1000000") {
            config,
            value in
            parse(value, into: &config.llm.maxTokensLimit, in: 1...1_000_000)
        },
        Setting(
            yamlPath: "llm.tokens_per_minute",
            environment: "LLM_TOKENS_PER_MINUTE",
            accepted: "tokens per API key per minute, an integer from 0 (off) to 1000000000"
        ) { config, value in
            parse(value, into: &config.llm.tokensPerMinute, in: 0...1_000_000_000)
        },
        Setting(
            yamlPath: "llm.allowed_origins",
            environment: "ALLOWED_ORIGINS",
            accepted: "comma-separated origins such as https://app.example.com, or *"
        ) { config, value in
            let origins = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard origins.allSatisfy({ $0 == "*" || (($0.hasPrefix("http://") || $0.hasPrefix("https://")) && !$0.hasSuffix("/")) })
            else { return false }
            config.llm.allowedOrigins = origins
            return true
        },
        Setting(yamlPath: "scoring.model", environment: "SCORING_MODEL", accepted: "a model name") { config, value in
            guard !value.isEmpty else { return false }
            config.scoringModel = value
            return true
        },
    ]

    /// Reads the YAML file (if any), then the environment, then checks the result.
    ///
    /// - Parameters:
    ///   - file: Path of a YAML configuration file (`--config` or `CORTEX_CONFIG`).
    ///   - environment: Variables that override the file.
    /// - Throws: ``ConfigurationError`` naming the first bad key.
    public static func load(file: String?, environment: [String: String]) throws -> CortexConfiguration {
        var config = CortexConfiguration()
        var deployments: Any?
        if let file {
            guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
                throw ConfigurationError(key: "--config", value: file, expected: "a readable YAML file")
            }
            deployments = try config.apply(yaml: text)
        }
        try config.apply(environment: environment)
        // Deployments inherit the `llm` section's settings, so they are read once it is complete.
        if let deployments {
            config.moreLLMDeployments = try Self.llmDeployments(fromYAML: deployments, base: config.llm, environment: environment)
        }
        try config.llm.validate()
        var names = Set<String>()
        for (index, deployment) in config.llmDeployments.enumerated() {
            guard names.insert(deployment.deployment).inserted else {
                throw ConfigurationError(
                    key: "llm.deployments[\(index - (config.llm.isEnabled ? 1 : 0))].name", value: deployment.deployment,
                    expected: "a name no other LLM deployment uses")
            }
        }
        if !config.llmDeployments.isEmpty, config.billing.holdTTLSeconds < config.llm.totalTimeoutSeconds {
            throw ConfigurationError(
                key: "HOLD_TTL_S", value: String(config.billing.holdTTLSeconds),
                expected: "at least LLM_TOTAL_TIMEOUT_S (\(config.llm.totalTimeoutSeconds)): a hold must outlive the longest LLM request")
        }
        return config
    }

    /// Applies a YAML document; unknown keys are errors so that typos do not pass silently.
    ///
    /// - Returns: `llm.deployments` as read, for the caller to apply once the `llm` section they
    ///   inherit from is complete (the environment may still change it).
    @discardableResult
    mutating func apply(yaml text: String) throws -> Any? {
        let document: Any?
        do {
            document = try Yams.load(yaml: text)
        } catch {
            throw ConfigurationError(key: "--config", value: nil, expected: "valid YAML (\(error))")
        }
        guard let document else { return nil }
        guard let root = document as? [String: Any] else {
            throw ConfigurationError(key: "--config", value: nil, expected: "a YAML mapping at the top level")
        }
        let sections = Set(Self.settings.map { String($0.yamlPath.split(separator: ".")[0]) }).union(["models"])
        var deployments: Any?
        for (sectionName, sectionValue) in root {
            guard sections.contains(sectionName) else {
                throw ConfigurationError(key: sectionName, value: nil, expected: "one of \(sections.sorted().joined(separator: ", "))")
            }
            if sectionName == "models" {
                models = try Self.models(fromYAML: sectionValue)
                continue
            }
            guard let section = sectionValue as? [String: Any] else {
                throw ConfigurationError(key: sectionName, value: nil, expected: "a mapping")
            }
            for (key, value) in section {
                let path = "\(sectionName).\(key)"
                if path == "llm.deployments" {
                    deployments = value
                    continue
                }
                guard let setting = Self.settings.first(where: { $0.yamlPath == path }) else {
                    let known = Self.settings.filter { $0.yamlPath.hasPrefix(sectionName + ".") }.map { $0.yamlPath }
                    throw ConfigurationError(key: path, value: nil, expected: "one of \(known.joined(separator: ", "))")
                }
                // A mapping (billing.prices) is read as the same NAME=VALUE list its variable takes,
                // and a list of overrides as the TENANT/MODEL=RPS:BURST list.
                let text: String
                if let mapping = value as? [String: Any] {
                    text = mapping.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ",")
                } else if path == "rate_limit.overrides", let list = value as? [Any] {
                    text = try Self.overrides(fromYAML: list)
                } else if let list = value as? [Any] {
                    // A list (auth.api_keys, llm.allowed_origins) is read as its comma-separated form.
                    text = list.map { "\($0)" }.joined(separator: ",")
                } else {
                    text = "\(value)"
                }
                try apply(setting, value: text, key: path)
            }
        }
        return deployments
    }

    /// Applies environment variables that name a setting.
    mutating func apply(environment: [String: String]) throws {
        var environment = environment
        // The multi-tenant ops API calls the admin token API_ADMIN_KEY; ADMIN_TOKEN wins when both are set.
        if environment["ADMIN_TOKEN"] == nil, let legacy = environment["API_ADMIN_KEY"] {
            environment["ADMIN_TOKEN"] = legacy
        }
        // An OpenAI fallback's key under the name OpenAI's own tools read.
        if environment["LLM_FALLBACK_API_KEY"] == nil, let key = environment["OPENAI_API_KEY"] {
            environment["LLM_FALLBACK_API_KEY"] = key
        }
        for setting in Self.settings {
            if let value = environment[setting.environment] {
                try apply(setting, value: value, key: setting.environment)
            }
        }
        if let paths = environment["MODEL_PATH"] {
            let list = paths.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !list.isEmpty else {
                throw ConfigurationError(key: "MODEL_PATH", value: paths, expected: "one or more comma-separated model paths")
            }
            models = list.map { ModelSource(path: $0) }
        }
        // The A/B image service: the two image classifiers keep their names whatever their files are called.
        for (variable, name) in [("MODEL_VA_PATH", "vA"), ("MODEL_VB_PATH", "vB")] {
            guard let path = environment[variable] else { continue }
            guard !path.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw ConfigurationError(key: variable, value: path, expected: "the path of an ONNX model")
            }
            let source = ModelSource(name: name, path: path.trimmingCharacters(in: .whitespaces))
            if let index = models.firstIndex(where: { $0.name == name }) {
                models[index] = source
            } else {
                models.append(source)
            }
        }
        if let version = environment["MODEL_VERSION"] {
            guard !version.isEmpty else {
                throw ConfigurationError(key: "MODEL_VERSION", value: version, expected: "a non-empty version string")
            }
            for index in models.indices { models[index].version = version }
        }
    }

    private mutating func apply(_ setting: Setting, value: String, key: String) throws {
        guard setting.apply(&self, value.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigurationError(key: key, value: value, expected: setting.accepted)
        }
    }

    private static func models(fromYAML value: Any) throws -> [ModelSource] {
        guard let list = value as? [Any] else {
            throw ConfigurationError(key: "models", value: nil, expected: "a list of {name, path, version}")
        }
        var sources: [ModelSource] = []
        for (index, item) in list.enumerated() {
            guard let entry = item as? [String: Any] else {
                throw ConfigurationError(
                    key: "models[\(index)]", value: nil, expected: "a mapping with path, and optionally name and version")
            }
            if let unknown = entry.keys.first(where: { !["name", "path", "version"].contains($0) }) {
                throw ConfigurationError(key: "models[\(index)].\(unknown)", value: nil, expected: "one of name, path, version")
            }
            guard let path = entry["path"].map({ "\($0)" }), !path.isEmpty else {
                throw ConfigurationError(key: "models[\(index)].path", value: nil, expected: "the path of a model file or directory")
            }
            var source = ModelSource(path: path)
            if let name = entry["name"].map({ "\($0)" }) {
                guard isValidModelName(name) else {
                    throw ConfigurationError(key: "models[\(index)].name", value: name, expected: "letters, digits, '-', '_' and '.'")
                }
                source.name = name
            }
            source.version = entry["version"].map { "\($0)" }
            guard !sources.contains(where: { $0.name == source.name }) else {
                throw ConfigurationError(key: "models[\(index)].name", value: source.name, expected: "a name not used by another model")
            }
            sources.append(source)
        }
        return sources
    }

    /// `[{name, providers: [{kind, url, model, api_key_env}], price_input_per_1k, price_output_per_1k,
    /// max_tokens}, ...]`, each on top of `base` (the `llm` section). A key is never written in the
    /// file: `api_key_env` names the environment variable that holds it.
    private static func llmDeployments(fromYAML value: Any, base: LLM, environment: [String: String]) throws -> [LLM] {
        guard let list = value as? [Any] else {
            throw ConfigurationError(key: "llm.deployments", value: nil, expected: "a list of {name, providers, ...}")
        }
        return try list.enumerated().map { index, item in
            let key = "llm.deployments[\(index)]"
            guard let entry = item as? [String: Any] else {
                throw ConfigurationError(key: key, value: nil, expected: "a mapping with name and providers")
            }
            let known = ["name", "providers", "price_input_per_1k", "price_output_per_1k", "max_tokens"]
            if let unknown = entry.keys.sorted().first(where: { !known.contains($0) }) {
                throw ConfigurationError(key: "\(key).\(unknown)", value: nil, expected: "one of \(known.joined(separator: ", "))")
            }
            var deployment = base
            deployment.moreFallbacks = []
            guard let name = entry["name"].map({ "\($0)" }), isValidModelName(name) else {
                throw ConfigurationError(key: "\(key).name", value: nil, expected: "a model name: letters, digits, '-', '_' and '.'")
            }
            deployment.deployment = name
            guard let providerList = entry["providers"] as? [Any], !providerList.isEmpty else {
                throw ConfigurationError(key: "\(key).providers", value: nil, expected: "a list of {kind, url, model}, primary first")
            }
            var providers: [LLM.Provider] = []
            for (position, item) in providerList.enumerated() {
                let providerKey = "\(key).providers[\(position)]"
                guard let fields = item as? [String: Any] else {
                    throw ConfigurationError(key: providerKey, value: nil, expected: "a mapping with kind, url and model")
                }
                if let unknown = fields.keys.sorted().first(where: { !["kind", "url", "model", "api_key_env"].contains($0) }) {
                    throw ConfigurationError(key: "\(providerKey).\(unknown)", value: nil, expected: "one of kind, url, model, api_key_env")
                }
                var provider = LLM.Provider(kind: .ollama, url: "", model: "")
                guard parse("\(fields["kind"] ?? "ollama")", into: &provider.kind) else {
                    throw ConfigurationError(key: "\(providerKey).kind", value: nil, expected: "ollama or openai")
                }
                guard parse(url: "\(fields["url"] ?? "")", into: &provider.url) else {
                    throw ConfigurationError(key: "\(providerKey).url", value: nil, expected: "http://host:port or https://host:port")
                }
                guard parse(llmModel: "\(fields["model"] ?? "")", into: &provider.model) else {
                    throw ConfigurationError(key: "\(providerKey).model", value: nil, expected: "the provider's model name")
                }
                if let variable = fields["api_key_env"].map({ "\($0)" }) {
                    guard let secret = environment[variable], !secret.isEmpty else {
                        throw ConfigurationError(
                            key: "\(providerKey).api_key_env", value: variable, expected: "the name of a set environment variable")
                    }
                    provider.apiKey = secret
                }
                providers.append(provider)
            }
            deployment.setProviders(providers)
            for (field, target) in [("price_input_per_1k", \LLM.inputPricePer1K), ("price_output_per_1k", \LLM.outputPricePer1K)] {
                guard let text = entry[field].map({ "\($0)" }) else { continue }
                guard let price = Credits(decimal: text), price >= .zero else {
                    throw ConfigurationError(
                        key: "\(key).\(field)", value: text, expected: "credits, a decimal of at least 0 with at most 6 places")
                }
                deployment[keyPath: target] = price
            }
            if let text = entry["max_tokens"].map({ "\($0)" }) {
                guard parse(text, into: &deployment.defaultMaxTokens, in: 1...deployment.maxTokensLimit) else {
                    throw ConfigurationError(key: "\(key).max_tokens", value: text, expected: "an integer from 1 to LLM_MAX_TOKENS_LIMIT")
                }
            }
            return deployment
        }
    }

    /// `[{tenant: acme, model: lead-scoring, rps: 50, burst: 100}, ...]` as `acme/lead-scoring=50:100,...`;
    /// `tenant` and `model` default to `*`, `burst` to the rate rounded up.
    private static func overrides(fromYAML list: [Any]) throws -> String {
        try list.enumerated().map { index, item in
            let key = "rate_limit.overrides[\(index)]"
            guard let entry = item as? [String: Any] else {
                throw ConfigurationError(key: key, value: nil, expected: "a mapping with rps, and optionally tenant, model and burst")
            }
            if let unknown = entry.keys.sorted().first(where: { !["tenant", "model", "rps", "burst"].contains($0) }) {
                throw ConfigurationError(key: "\(key).\(unknown)", value: nil, expected: "one of tenant, model, rps, burst")
            }
            guard let rate = entry["rps"] else {
                throw ConfigurationError(key: "\(key).rps", value: nil, expected: "requests per second, above 0")
            }
            let scope = "\(entry["tenant"] ?? "*")/\(entry["model"] ?? "*")"
            return "\(scope)=\(rate)" + (entry["burst"].map { ":\($0)" } ?? "")
        }.joined(separator: ",")
    }

    static func isValidModelName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 128
            && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0) }
    }

    private static func parse(url text: String, into value: inout String) -> Bool {
        guard let components = URLComponents(string: text), ["http", "https"].contains(components.scheme ?? ""),
            let host = components.host, !host.isEmpty, components.query == nil
        else { return false }
        value = text.hasSuffix("/") ? String(text.dropLast()) : text
        return true
    }

    private static func parse(llmModel text: String, into value: inout String) -> Bool {
        guard !text.isEmpty, text.count <= 256, !text.contains(where: \.isWhitespace) else { return false }
        value = text
        return true
    }

    private static func parse(_ text: String, into value: inout LLM.Kind) -> Bool {
        guard let kind = LLM.Kind(rawValue: text.lowercased()) else { return false }
        value = kind
        return true
    }

    private static func parse(_ text: String, into value: inout Bool) -> Bool {
        switch text.lowercased() {
        case "true", "1", "yes", "on": value = true
        case "false", "0", "no", "off": value = false
        default: return false
        }
        return true
    }

    private static func parse(_ text: String, into value: inout Int, in range: ClosedRange<Int>) -> Bool {
        guard let parsed = Int(text), range.contains(parsed) else { return false }
        value = parsed
        return true
    }

    private static func parse(_ text: String, into value: inout Credits) -> Bool {
        guard let parsed = Credits(decimal: text), parsed >= .zero else { return false }
        value = parsed
        return true
    }

    private static func parse(_ text: String, into value: inout Double, in range: ClosedRange<Double>) -> Bool {
        guard let parsed = Double(text), parsed.isFinite, range.contains(parsed) else { return false }
        value = parsed
        return true
    }
}

extension CortexConfiguration.Database {
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

extension CortexConfiguration.LLM {
    /// A provider with a URL needs a model; a fallback needs a primary before it; limits must agree.
    func validate() throws {
        for (provider, prefix) in [(primary, "LLM_PRIMARY"), (fallback, "LLM_FALLBACK")]
        where !provider.url.isEmpty && provider.model.isEmpty {
            throw ConfigurationError(key: "\(prefix)_MODEL", value: nil, expected: "the model to ask \(provider.url) for")
        }
        if primary.url.isEmpty, !fallback.url.isEmpty {
            throw ConfigurationError(key: "LLM_PRIMARY_URL", value: nil, expected: "a primary provider when LLM_FALLBACK_URL is set")
        }
        if defaultMaxTokens > maxTokensLimit {
            throw ConfigurationError(
                key: "LLM_MAX_TOKENS", value: String(defaultMaxTokens), expected: "at most LLM_MAX_TOKENS_LIMIT (\(maxTokensLimit))")
        }
    }
}
