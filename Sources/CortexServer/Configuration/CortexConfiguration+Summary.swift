import CortexCore
import Foundation

extension CortexConfiguration {
    /// The effective settings as `cortex config check` prints them, one `key: value` line per declared
    /// setting, then the models and the more LLM deployments; secrets are shown as set, counted or `***`.
    public var summary: String {
        var lines = Self.settings.map { "\($0.key): \($0.show(self))" }
        lines.append("auth.demo in effect: \(auth.demoEnabled(host: server.host) ? "on" : "off") for host \(server.host)")
        lines.append(
            "rate_limit in effect: " + (rateLimit.limit.map { "\(rateLimit.requestsPerSecond)/s per key, burst \($0.burst)" } ?? "off"))
        lines.append(llm.isEnabled ? "llm: \(llm.providers.count) provider(s)" : "llm: off (LLM_PRIMARY_URL not set)")
        for deployment in moreLLMDeployments {
            let chain = deployment.providers.map { "\($0.kind.rawValue) \($0.url) \($0.model)\($0.apiKey == nil ? "" : " (api key set)")" }
            lines.append(
                "llm.deployments: \(deployment.deployment): \(chain.joined(separator: " -> ")); "
                    + "\(deployment.inputPricePer1K) in, \(deployment.outputPricePer1K) out per 1,000 tokens")
        }
        for model in models {
            lines.append("models: \(model.name) at \(model.path)" + (model.version.map { " version \($0)" } ?? ""))
        }
        return lines.joined(separator: "\n")
    }
}
