import Configuration
import CortexCore
public import CortexRuntime
import CortexStore
import Foundation

extension CortexConfiguration {
    /// Reads every declared setting through one `ConfigReader`; the first source that has a value
    /// wins: the command line, the environment, secrets in files (`ADMIN_TOKEN_FILE`, ...), the YAML file.
    ///
    /// - Parameters:
    ///   - file: Path of a YAML configuration file (`--config` or `CORTEX_CONFIG`).
    ///   - environment: Variables that override the file.
    ///   - commandLine: Values of options such as `--port`, by YAML key (`server.port`).
    /// - Throws: ``ConfigurationError`` naming the first bad setting as the operator wrote it.
    public static func load(file: String?, environment: [String: String], commandLine: [String: String] = [:]) throws
        -> CortexConfiguration
    {
        let document = try file.map(ConfigurationFile.init(path:)) ?? ConfigurationFile()
        let sources = try Sources(commandLine: commandLine, environment: environment, file: document.values)
        var config = CortexConfiguration()
        if let models = document.models { config.models = models }
        for setting in settings {
            let key = ConfigKey(setting.key)
            let secret = setting.secrecy != .none
            let read =
                setting.form == .list
                ? sources.reader.stringArray(forKey: key, isSecret: secret)
                : sources.reader.string(forKey: key, isSecret: secret).map { [$0] }
            guard var values = read?.map({ $0.trimmingCharacters(in: .whitespaces) }) else { continue }
            if setting.form == .list { values.removeAll(where: \.isEmpty) }
            guard setting.apply(&config, values) else {
                let origin = sources.origin(of: setting)
                throw ConfigurationError(
                    key: origin.name, value: secret && setting.secrecy == .value ? nil : origin.value, expected: setting.accepted)
            }
        }
        config.server.maxConnectionsSet = sources.reader.string(forKey: "server.max_connections") != nil
        try config.applyModelVariables(environment)
        config.auth.tenantKeys = try tenantKeys(environment)
        config.moreLLMDeployments = try document.deployments(base: config.llm, environment: environment)
        config.trafficEndpoints = try document.trafficEndpoints(base: config.traffic)
        try config.check()
        return config
    }

    /// The providers behind the reader, and which of them set a value, for error messages.
    private struct Sources {
        let commandLine: [String: String]
        let environment: [String: String]
        let secretFiles: [String: String]
        let file: [String: [String]]
        let reader: ConfigReader

        init(commandLine: [String: String], environment: [String: String], file: [String: [String]]) throws {
            // A variable name per setting: its own, else the first alias that is set.
            var names: [String: String] = [:]
            var secretFiles: [String: String] = [:]
            for setting in CortexConfiguration.settings {
                names[setting.key] = setting.names.first { environment[$0] != nil } ?? setting.environment
                guard setting.secrecy != .none else { continue }
                for name in setting.names {
                    guard let path = environment[name + "_FILE"] else { continue }
                    guard environment[name] == nil else {
                        throw ConfigurationError(key: name + "_FILE", value: path, expected: "\(name) or \(name)_FILE, not both")
                    }
                    guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                        throw ConfigurationError(key: name + "_FILE", value: path, expected: "a readable file holding \(name)")
                    }
                    secretFiles[setting.key] = text.trimmingCharacters(in: .whitespacesAndNewlines)
                    break
                }
            }
            let variableNames = names
            let forms = Dictionary(uniqueKeysWithValues: CortexConfiguration.settings.map { ($0.key, $0) })
            func provider(_ name: String, _ values: [String: [String]]) -> InMemoryProvider {
                InMemoryProvider(
                    name: name,
                    values: Dictionary(
                        uniqueKeysWithValues: values.map { key, values in
                            let secret = forms[key].map { $0.secrecy != .none } ?? false
                            let content: ConfigContent = forms[key]?.form == .list ? .stringArray(values) : .string(values.first ?? "")
                            return (AbsoluteConfigKey(ConfigKey(key)), ConfigValue(content, isSecret: secret))
                        }))
            }
            let secretNames = Set(CortexConfiguration.settings.filter { $0.secrecy != .none }.flatMap(\.names))
            let variables = EnvironmentVariablesProvider(environmentVariables: environment, secretsSpecifier: .specific(secretNames))
                .mapKeys { key in AbsoluteConfigKey([variableNames[key.components.joined(separator: ".")] ?? "-"]) }
            self.commandLine = commandLine
            self.environment = environment
            self.secretFiles = secretFiles
            self.file = file
            self.reader = ConfigReader(providers: [
                provider("command line", commandLine.mapValues { [$0] }), variables,
                provider("secret files", secretFiles.mapValues { [$0] }), provider("configuration file", file),
            ])
        }

        /// The name an operator used for the value the reader found, and the value as written.
        func origin(of setting: Setting) -> (name: String, value: String?) {
            if let value = commandLine[setting.key] { return ("--" + (setting.key.split(separator: ".").last ?? ""), value) }
            if let name = setting.names.first(where: { environment[$0] != nil }) { return (name, environment[name]) }
            if secretFiles[setting.key] != nil { return ((setting.names.first { environment[$0 + "_FILE"] != nil } ?? "") + "_FILE", nil) }
            return (setting.key, file[setting.key]?.joined(separator: ","))
        }
    }

    /// The models `specifications` name (`PATH`, `NAME=PATH`, `NAME:VERSION=PATH`), for
    /// `MODEL_PATH` and `cortex serve --model`.
    ///
    /// - Throws: ``ConfigurationError`` naming `setting` when two share a name: one version of a model is served at a time.
    public static func modelSources(_ specifications: [String], setting: String) throws -> [ModelSource] {
        let sources = specifications.map(ModelSource.init(specification:))
        if let twice = firstRepeated(sources) {
            throw ConfigurationError(
                key: setting, value: specifications.joined(separator: ","),
                expected: "one entry per model and version ('\(twice)' is given twice; versions of a model are NAME:VERSION=PATH)")
        }
        return sources
    }

    /// The `API_KEY_<TENANT>` variables (the multi-tenant ops API's): `API_KEY_EXPERTCO=key` makes
    /// the tenant `expertco` with that key (comma-separated for several), and
    /// `API_KEY_EXPERTCO_FILE=path` reads them from a file, as the other secrets' `_FILE` forms do.
    ///
    /// - Throws: ``ConfigurationError`` naming the variable (never its value) for a tenant name
    ///   that is not valid or is reserved (`default` is `API_KEYS`'s), an unreadable file, or an
    ///   implausible key.
    static func tenantKeys(_ environment: [String: String]) throws -> [Auth.TenantKeys] {
        var byTenant: [String: Auth.TenantKeys] = [:]
        for (variable, value) in environment where variable.hasPrefix("API_KEY_") {
            var suffix = String(variable.dropFirst("API_KEY_".count))
            var text = value
            if suffix.hasSuffix("_FILE") {
                suffix.removeLast("_FILE".count)
                guard let data = FileManager.default.contents(atPath: value), let contents = String(data: data, encoding: .utf8) else {
                    throw ConfigurationError(key: variable, value: value, expected: "the path of a readable file holding the key")
                }
                text = contents
            }
            let tenant = suffix.lowercased()
            guard Tenant.isValidName(tenant), !suffix.isEmpty else {
                throw ConfigurationError(
                    key: variable, value: nil, expected: "API_KEY_<TENANT> with a tenant name of letters, digits, '-' and '_'")
            }
            guard tenant != "default", tenant != demoTenant else {
                throw ConfigurationError(
                    key: variable, value: nil,
                    expected: tenant == "default"
                        ? "API_KEYS for the default tenant's keys" : "another tenant name (\(demoTenant) is the demo tenant's)")
            }
            let keys = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
            guard !keys.isEmpty, keys.allSatisfy({ APIKey.isPlausible($0[...]) }) else {
                throw ConfigurationError(
                    key: variable, value: nil, expected: "comma-separated keys of 8-256 printable characters without spaces")
            }
            byTenant[tenant, default: Auth.TenantKeys(tenant: tenant, keys: [], variable: variable)].keys += keys
        }
        return byTenant.values.sorted { $0.tenant < $1.tenant }
    }

    /// The first `name` or `name:version` that two sources share, if any.
    static func firstRepeated(_ sources: [ModelSource]) -> String? {
        var seen: Set<String> = []
        for source in sources {
            let key = source.version.map { "\(source.name):\($0)" } ?? source.name
            if !seen.insert(key).inserted { return key }
        }
        return nil
    }

    /// `MODEL_PATH` replaces the models; `MODEL_VA_PATH` and `MODEL_VB_PATH` replace (or add) the A/B
    /// image service's two classifiers by name, whatever their files are called; `MODEL_VERSION` versions them all.
    private mutating func applyModelVariables(_ environment: [String: String]) throws {
        if let paths = environment["MODEL_PATH"] {
            let list = paths.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !list.isEmpty else {
                throw ConfigurationError(key: "MODEL_PATH", value: paths, expected: "one or more comma-separated model paths")
            }
            models = try Self.modelSources(list, setting: "MODEL_PATH")
        }
        for (variable, name) in [("MODEL_VA_PATH", "vA"), ("MODEL_VB_PATH", "vB")] {
            guard let path = environment[variable]?.trimmingCharacters(in: .whitespaces) else { continue }
            guard !path.isEmpty else { throw ConfigurationError(key: variable, value: path, expected: "the path of an ONNX model") }
            let source = ModelSource(name: name, path: path)
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
            if let twice = Self.firstRepeated(models) {
                throw ConfigurationError(
                    key: "MODEL_VERSION", value: version,
                    expected: "unset when a model has several versions ('\(twice)' would be given twice)")
            }
        }
    }

    /// Settings that are each valid but disagree, or that this release cannot honour.
    private func check() throws {
        if traffic.weightA == 0, traffic.weightB == 0 {
            throw ConfigurationError(key: "AB_WEIGHT_A", value: "0", expected: "a weight above 0 for vA or vB (AB_WEIGHT_B)")
        }
        if traffic.split != nil, imageModel != "vA" {
            throw ConfigurationError(
                key: "IMAGE_MODEL", value: imageModel,
                expected: "vA (or unset) when AB_WEIGHT_A and AB_WEIGHT_B split POST /v1/infer between vA and vB")
        }
        for (variable, on) in [("SHADOW_ENABLED", traffic.shadowEnabled), ("CANARY_ENABLED", traffic.canaryEnabled)]
        where on && !models.contains(where: { $0.name == "vB" }) {
            throw ConfigurationError(
                key: variable, value: "true", expected: "false, or a model named vB (MODEL_VB_PATH) to run the copies or the canary on")
        }
        // A key names one tenant: the same key in two variables would serve one of them silently.
        var seenKeys = Set(auth.apiKeys)
        for entry in auth.tenantKeys where !entry.keys.allSatisfy({ seenKeys.insert($0).inserted }) {
            throw ConfigurationError(key: entry.variable, value: nil, expected: "keys no other API_KEY_<TENANT> or API_KEYS has")
        }
        switch modelEndpoint.provider {
        case .local: break
        case .remote where modelEndpoint.url.isEmpty:
            throw ConfigurationError(key: "MODEL_ENDPOINT_URL", value: nil, expected: "the base URL of the Open Inference Protocol server")
        case .remote: break
        case .sagemaker:
            if modelEndpoint.sageMakerEndpointName == nil {
                throw ConfigurationError(key: "SAGEMAKER_ENDPOINT_NAME", value: nil, expected: "the SageMaker endpoint to call")
            }
            if modelEndpoint.awsRegion == nil {
                throw ConfigurationError(key: "AWS_REGION", value: nil, expected: "the SageMaker endpoint's region, e.g. us-east-1")
            }
            if (modelEndpoint.awsAccessKeyID == nil) != (modelEndpoint.awsSecretAccessKey == nil) {
                let missing = modelEndpoint.awsAccessKeyID == nil ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY"
                throw ConfigurationError(key: missing, value: nil, expected: "set together with its pair, or neither")
            }
            if modelEndpoint.awsCredentials == nil {
                throw ConfigurationError(
                    key: "AWS_ACCESS_KEY_ID", value: nil,
                    expected:
                        "AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI or _RELATIVE_URI, as ECS and EKS Pod Identity set them)"
                )
            }
        case .azure:
            if modelEndpoint.azureURL == nil {
                throw ConfigurationError(key: "AZURE_ML_ENDPOINT_URL", value: nil, expected: "the online endpoint's scoring URI")
            }
            if modelEndpoint.azureAPIKey == nil {
                throw ConfigurationError(key: "AZURE_ML_API_KEY", value: nil, expected: "the online endpoint's key")
            }
        }
        var endpoints = Set<String>()
        for (index, endpoint) in trafficEndpoints.enumerated() {
            let key = "traffic.endpoints[\(index)]"
            guard endpoints.insert(endpoint.endpoint).inserted, !models.contains(where: { $0.name == endpoint.endpoint }) else {
                throw ConfigurationError(
                    key: "\(key).name", value: endpoint.endpoint, expected: "a name no model and no other endpoint uses")
            }
            for (field, name) in [("variant_a", endpoint.variantA), ("variant_b", endpoint.variantB)]
            where !models.contains(where: { $0.name == name }) {
                throw ConfigurationError(
                    key: "\(key).\(field)", value: name,
                    expected: "the name of a configured model (\(models.map(\.name).joined(separator: ", ")))")
            }
            if endpoint.variantA == endpoint.variantB {
                throw ConfigurationError(key: "\(key).variant_b", value: endpoint.variantB, expected: "a model other than variant_a")
            }
            if endpoint.weightA == 0, endpoint.weightB == 0 {
                throw ConfigurationError(key: "\(key).ab_weight_a", value: "0", expected: "a weight above 0 for variant_a or variant_b")
            }
        }
        for (provider, prefix) in [(llm.primary, "LLM_PRIMARY"), (llm.fallback, "LLM_FALLBACK")]
        where !provider.url.isEmpty && provider.model.isEmpty {
            throw ConfigurationError(key: "\(prefix)_MODEL", value: nil, expected: "the model to ask \(provider.url) for")
        }
        if llm.primary.url.isEmpty, !llm.fallback.url.isEmpty {
            throw ConfigurationError(key: "LLM_PRIMARY_URL", value: nil, expected: "a primary provider when LLM_FALLBACK_URL is set")
        }
        if llm.defaultMaxTokens > llm.maxTokensLimit {
            throw ConfigurationError(
                key: "LLM_MAX_TOKENS", value: String(llm.defaultMaxTokens), expected: "at most LLM_MAX_TOKENS_LIMIT (\(llm.maxTokensLimit))"
            )
        }
        var names = Set<String>()
        for (index, deployment) in llmDeployments.enumerated() where !names.insert(deployment.deployment).inserted {
            throw ConfigurationError(
                key: "llm.deployments[\(index - (llm.isEnabled ? 1 : 0))].name", value: deployment.deployment,
                expected: "a name no other LLM deployment uses")
        }
        // The Redis TLS files are read now, so a path that cannot be used stops start-up (and `config check`).
        if let url = rateLimit.redisURL {
            do {
                _ = try RedisClient(url: url, tls: rateLimit.redisTLS)
            } catch {
                let key = rateLimit.redisTLS.certificate != nil ? "REDIS_TLS_CERT_FILE" : "REDIS_TLS_CA_FILE"
                throw ConfigurationError(key: key, value: nil, expected: "\(error)")
            }
        } else if !rateLimit.redisTLS.isEmpty {
            throw ConfigurationError(
                key: "REDIS_TLS_CA_FILE", value: nil, expected: "a rediss:// REDIS_URL to use the Redis TLS files with")
        }
        if !llmDeployments.isEmpty, billing.holdTTLSeconds < llm.totalTimeoutSeconds {
            throw ConfigurationError(
                key: "HOLD_TTL_S", value: String(billing.holdTTLSeconds),
                expected: "at least LLM_TOTAL_TIMEOUT_S (\(llm.totalTimeoutSeconds)): a hold must outlive the longest LLM request")
        }
    }
}
