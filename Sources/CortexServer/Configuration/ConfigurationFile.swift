import CortexCore
import CortexRuntime
import Foundation
import Yams

/// The YAML configuration file (`--config` or `CORTEX_CONFIG`), read into the declared settings'
/// values, the `models` list and the `llm.deployments` list. Unknown keys are errors, so a typo
/// never passes silently.
///
/// swift-configuration's YAML provider reads scalars and lists of scalars only, and says nothing
/// of unknown keys; Cortex's file has lists of mappings (`models`, `llm.deployments`) and must
/// refuse typos, so the file is walked here and its values handed to the same `ConfigReader`.
struct ConfigurationFile {
    /// Each declared setting's value(s), by YAML key.
    var values: [String: [String]] = [:]
    /// `models:`, when the file has it.
    var models: [ModelSource]?
    /// `llm.deployments:`, read once the `llm` section they inherit from is complete.
    private var deployments: Node?
    /// `traffic.endpoints:`, read once the `traffic` section they inherit from is complete.
    private var trafficEndpoints: Node?

    init() {}

    init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(key: "--config", value: path, expected: "a readable YAML file")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw ConfigurationError(key: "--config", value: nil, expected: "valid YAML (\(error))")
        }
        guard let root else { return }
        guard let sections = root.mapping else {
            throw ConfigurationError(key: "--config", value: nil, expected: "a YAML mapping at the top level")
        }
        let settings = CortexConfiguration.settings
        let names = Set(settings.map { String($0.key.prefix { $0 != "." }) }).union(["models"])
        for (name, section) in sections {
            let name = name.string ?? "\(name)"
            guard names.contains(name) else {
                throw ConfigurationError(key: name, value: nil, expected: "one of \(names.sorted().joined(separator: ", "))")
            }
            if name == "models" {
                models = try Self.models(section)
                continue
            }
            guard let entries = section.mapping else { throw ConfigurationError(key: name, value: nil, expected: "a mapping") }
            for (entry, node) in entries {
                let key = "\(name).\(entry.string ?? "\(entry)")"
                if key == "llm.deployments" {
                    deployments = node
                    continue
                }
                if key == "traffic.endpoints" {
                    trafficEndpoints = node
                    continue
                }
                guard let setting = settings.first(where: { $0.key == key }) else {
                    let known = settings.map(\.key).filter { $0.hasPrefix(name + ".") }
                    throw ConfigurationError(key: key, value: nil, expected: "one of \(known.joined(separator: ", "))")
                }
                values[key] = try Self.values(node, key: key, form: setting.form, expected: setting.accepted)
            }
        }
    }

    /// A scalar is one value; a list takes a YAML list, a comma-separated string, a mapping
    /// (`billing.prices`: `NAME: VALUE` as `NAME=VALUE`); a list of `rate_limit.overrides` is of
    /// `{tenant, model, rps, burst}` mappings.
    private static func values(_ node: Node, key: String, form: CortexConfiguration.Setting.Form, expected: String) throws -> [String] {
        if let text = node.string {
            return form == .scalar ? [text] : text.split(separator: ",").map(String.init)
        }
        guard form == .list else { throw ConfigurationError(key: key, value: nil, expected: expected) }
        if let mapping = node.mapping {
            return mapping.map { "\($0.key.string ?? "")=\($0.value.string ?? "")" }
        }
        guard let list = node.sequence else { throw ConfigurationError(key: key, value: nil, expected: expected) }
        return try list.enumerated().map { index, item in
            let overrides = key == "rate_limit.overrides"
            if let text = item.string, !overrides { return text }
            guard overrides else { throw ConfigurationError(key: "\(key)[\(index)]", value: nil, expected: expected) }
            let fields = try fields(item, key: "\(key)[\(index)]", allowed: ["tenant", "model", "rps", "burst"])
            guard let rate = fields["rps"]?.string else {
                throw ConfigurationError(key: "\(key)[\(index)].rps", value: nil, expected: "requests per second, above 0")
            }
            let scope = "\(fields["tenant"]?.string ?? "*")/\(fields["model"]?.string ?? "*")"
            return "\(scope)=\(rate)" + (fields["burst"]?.string.map { ":\($0)" } ?? "")
        }
    }

    /// `[{name, path, version}, ...]`, each name and version once (a name may have several versions).
    private static func models(_ node: Node) throws -> [ModelSource] {
        guard let list = node.sequence else {
            throw ConfigurationError(key: "models", value: nil, expected: "a list of {name, path, version}")
        }
        var sources: [ModelSource] = []
        for (index, item) in list.enumerated() {
            let key = "models[\(index)]"
            let fields = try fields(item, key: key, allowed: ["name", "path", "version"])
            guard let path = fields["path"]?.string, !path.isEmpty else {
                throw ConfigurationError(key: "\(key).path", value: nil, expected: "the path of a model file or directory")
            }
            var source = ModelSource(path: path)
            if let name = fields["name"]?.string {
                guard CortexConfiguration.isValidModelName(name) else {
                    throw ConfigurationError(key: "\(key).name", value: name, expected: "letters, digits, '-', '_' and '.'")
                }
                source.name = name
            }
            source.version = fields["version"]?.string
            guard !sources.contains(where: { $0.name == source.name && $0.version == source.version }) else {
                throw ConfigurationError(
                    key: "\(key).name", value: source.name, expected: "a name (and version) not used by another model")
            }
            sources.append(source)
        }
        return sources
    }

    /// `[{name, providers: [{kind, url, model, api_key_env}], price_input_per_1k, price_output_per_1k,
    /// max_tokens}, ...]`, each on top of `base` (the `llm` section). A key is never written in the
    /// file: `api_key_env` names the environment variable that holds it.
    func deployments(base: CortexConfiguration.LLM, environment: [String: String]) throws -> [CortexConfiguration.LLM] {
        guard let deployments else { return [] }
        guard let list = deployments.sequence else {
            throw ConfigurationError(key: "llm.deployments", value: nil, expected: "a list of {name, providers, ...}")
        }
        return try list.enumerated().map { index, item in
            let key = "llm.deployments[\(index)]"
            let fields = try Self.fields(
                item, key: key, allowed: ["name", "providers", "price_input_per_1k", "price_output_per_1k", "max_tokens"])
            var deployment = CortexConfiguration()
            deployment.llm = base
            // Each field is applied by the `llm` setting it overrides, so it accepts what that setting accepts.
            for (field, name) in [
                ("name", "llm.deployment"), ("price_input_per_1k", "llm.price_input_per_1k"),
                ("price_output_per_1k", "llm.price_output_per_1k"), ("max_tokens", "llm.max_tokens"),
            ] {
                guard let node = fields[field] else {
                    guard field != "name" else { throw ConfigurationError(key: "\(key).name", value: nil, expected: "a model name") }
                    continue
                }
                let setting = CortexConfiguration.setting(name)
                guard let text = node.string, setting.apply(&deployment, [text]) else {
                    throw ConfigurationError(key: "\(key).\(field)", value: node.string, expected: setting.accepted)
                }
            }
            guard let providerList = fields["providers"]?.sequence, !providerList.isEmpty else {
                throw ConfigurationError(key: "\(key).providers", value: nil, expected: "a list of {kind, url, model}, primary first")
            }
            var providers: [CortexConfiguration.LLM.Provider] = []
            for (position, item) in providerList.enumerated() {
                let providerKey = "\(key).providers[\(position)]"
                let fields = try Self.fields(item, key: providerKey, allowed: ["kind", "url", "model", "api_key_env"])
                var provider = CortexConfiguration()
                for (field, name, fallback) in [
                    ("kind", "llm.primary_kind", "ollama"), ("url", "llm.primary_url", ""), ("model", "llm.primary_model", ""),
                ] {
                    let setting = CortexConfiguration.setting(name)
                    guard setting.apply(&provider, [fields[field]?.string ?? fallback]) else {
                        throw ConfigurationError(key: "\(providerKey).\(field)", value: nil, expected: setting.accepted)
                    }
                }
                if let variable = fields["api_key_env"]?.string {
                    guard let secret = environment[variable], !secret.isEmpty else {
                        throw ConfigurationError(
                            key: "\(providerKey).api_key_env", value: variable, expected: "the name of a set environment variable")
                    }
                    provider.llm.primary.apiKey = secret
                }
                providers.append(provider.llm.primary)
            }
            deployment.llm.setProviders(providers)
            guard deployment.llm.defaultMaxTokens <= deployment.llm.maxTokensLimit else {
                throw ConfigurationError(
                    key: "\(key).max_tokens", value: String(deployment.llm.defaultMaxTokens), expected: "at most LLM_MAX_TOKENS_LIMIT")
            }
            return deployment.llm
        }
    }

    /// `[{name, variant_a, variant_b, ab_weight_a, ab_weight_b, sticky_cookie, shadow_enabled,
    /// canary_enabled}, ...]`, each on top of `base` (the `traffic` section): a named endpoint of
    /// the Open Inference Protocol whose requests go to one of two models. Each field is applied by
    /// the `traffic` setting it overrides, so it accepts what that setting accepts.
    func trafficEndpoints(base: CortexConfiguration.Traffic) throws -> [CortexConfiguration.Traffic] {
        guard let trafficEndpoints else { return [] }
        guard let list = trafficEndpoints.sequence else {
            throw ConfigurationError(key: "traffic.endpoints", value: nil, expected: "a list of {name, variant_a, variant_b, ...}")
        }
        return try list.enumerated().map { index, item in
            let key = "traffic.endpoints[\(index)]"
            let overrides = ["ab_weight_a", "ab_weight_b", "sticky_cookie", "shadow_enabled", "canary_enabled"]
            let fields = try Self.fields(item, key: key, allowed: ["name", "variant_a", "variant_b"] + overrides)
            var endpoint = CortexConfiguration()
            endpoint.traffic = base
            // A named endpoint splits on its own weights: vA alone unless it says otherwise.
            (endpoint.traffic.weightA, endpoint.traffic.weightB) = (1, 0)
            for field in overrides {
                guard let node = fields[field] else { continue }
                let setting = CortexConfiguration.setting("traffic.\(field)")
                guard let text = node.string, setting.apply(&endpoint, [text]) else {
                    throw ConfigurationError(key: "\(key).\(field)", value: node.string, expected: setting.accepted)
                }
            }
            for (field, path) in [("name", \CortexConfiguration.Traffic.endpoint), ("variant_a", \.variantA), ("variant_b", \.variantB)] {
                guard let name = fields[field]?.string, CortexConfiguration.isValidModelName(name) else {
                    throw ConfigurationError(
                        key: "\(key).\(field)", value: fields[field]?.string, expected: "a model name: letters, digits, '-', '_' and '.'")
                }
                endpoint.traffic[keyPath: path] = name
            }
            return endpoint.traffic
        }
    }

    /// A mapping's fields by name; a key not in `allowed` is an error naming it.
    private static func fields(_ node: Node, key: String, allowed: [String]) throws -> [String: Node] {
        guard let mapping = node.mapping else {
            throw ConfigurationError(key: key, value: nil, expected: "a mapping of \(allowed.joined(separator: ", "))")
        }
        var fields: [String: Node] = [:]
        for (name, value) in mapping {
            let name = name.string ?? "\(name)"
            guard allowed.contains(name) else {
                throw ConfigurationError(key: "\(key).\(name)", value: nil, expected: "one of \(allowed.joined(separator: ", "))")
            }
            fields[name] = value
        }
        return fields
    }
}
