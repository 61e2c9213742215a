import CortexCore
public import CortexRuntime
import Foundation
public import Hummingbird

/// `GET /status`: one page for the operator, everything `/ready` checks plus what this replica
/// runs: version and uptime, each model's state (and why a model is not ready), the database,
/// and whether rate limits are shared through Redis or local after a fallback.
///
/// It needs no key, like the probes, and shows nothing secret (the database and Redis locations
/// are shown without passwords).
public struct StatusController<Context: RequestIDContext>: Sendable {
    let dependencies: ServerDependencies

    /// Creates the controller; uptime counts from when `dependencies` were opened.
    public init(dependencies: ServerDependencies) {
        self.dependencies = dependencies
    }

    /// Adds `/status`, and the LLM assistant's `/api/status/summary` (with its legacy path `/status/summary`).
    public func addRoutes(to router: Router<Context>) {
        router.get("/status") { _, _ in await self.status() }
        router.get("/resources") { _, _ in await self.resources() }
        router.get("/api/status/summary") { _, _ in await self.summary(path: "api") }
        router.get("/status/summary") { _, context in try await self.legacySummary(context) }
    }

    /// When `/status/summary` was deprecated in favour of `/api/status/summary` (2026-12-01), as
    /// RFC 9745's `Deprecation` date.
    static var legacyDeprecatedAt: Int { 1_796_083_200 }

    /// `GET /resources`: CPU, memory, this process, the database's disk, the event loops' lag, and
    /// the thresholds breached (`alerts`), over the monitor's last interval.
    func resources() async -> Response {
        let report = await dependencies.resources.report()
        let mib = 1_048_576.0
        func round(_ value: Double) -> Double { (value * 100).rounded() / 100 }
        var json = JSONWriter(capacity: 768)
        json.beginObject()
        json.key("cpu")
        json.beginObject()
        json.key("usage_percent")
        json.number(round(report.cpuPercent))
        json.member("cores", report.cores)
        json.key("limit_cores")
        if let cores = report.limitCores { json.number(cores) } else { json.null() }
        json.member("source", report.cpuSource)
        json.endObject()
        json.key("memory")
        json.beginObject()
        json.key("usage_percent")
        json.number(round(report.memoryPercent))
        json.key("total_mb")
        json.number(round(Double(report.memoryTotalBytes) / mib))
        json.key("available_mb")
        json.number(round(Double(report.memoryAvailableBytes) / mib))
        json.key("limit_mb")
        if let limit = report.memoryLimitBytes { json.number(round(Double(limit) / mib)) } else { json.null() }
        json.member("source", report.memorySource)
        json.endObject()
        json.key("process")
        json.beginObject()
        json.key("memory_mb")
        json.number(round(Double(report.processResidentBytes) / mib))
        json.key("cpu_percent")
        json.number(round(report.processCPUPercent))
        json.member("open_descriptors", report.openDescriptors)
        json.key("descriptor_limit")
        if let limit = report.descriptorLimit { json.number(Double(limit)) } else { json.null() }
        json.member("uptime_s", Int(Date().timeIntervalSince(dependencies.startedAt)))
        json.endObject()
        json.key("disk")
        json.beginObject()
        json.member("path", report.diskPath)
        json.key("free_mb")
        if let free = report.diskFreeBytes { json.number(round(Double(free) / mib)) } else { json.null() }
        json.key("total_mb")
        if let total = report.diskTotalBytes { json.number(round(Double(total) / mib)) } else { json.null() }
        json.member("min_free_mb", dependencies.configuration.readiness.minFreeDiskMB)
        json.endObject()
        json.key("event_loop")
        json.beginObject()
        json.key("lag_ms")
        json.number((report.eventLoopLagMilliseconds * 1000).rounded() / 1000)
        json.endObject()
        json.key("alerts")
        json.beginArray()
        for alert in report.alerts {
            json.beginObject()
            json.member("name", alert.name)
            json.key("value")
            json.number(alert.value)
            json.key("threshold")
            json.number(alert.threshold)
            json.endObject()
        }
        json.endArray()
        json.key("window_s")
        json.number(round(report.windowSeconds))
        json.endObject()
        return Response.json(.ok, json.text)
    }

    /// `date` as an HTTP date (RFC 9110's IMF-fixdate): `Mon, 01 Mar 2027 00:00:00 GMT`.
    static func httpDate(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: date)
    }

    /// The legacy path: counted (`status_legacy_requests_total`), marked deprecated (`Deprecation`,
    /// `Sunset` with `LEGACY_SUNSET`, `Link` to the successor), and with `FAIL_ON_LEGACY` a 410
    /// `legacy_path_removed`, so a smoke run fails on the first legacy access.
    func legacySummary(_ context: Context) async throws -> Response {
        dependencies.metrics.legacyStatusRequests.increment()
        let settings = dependencies.configuration.status
        var response: Response
        if settings.failOnLegacy {
            response = APIError(
                status: 410, code: "legacy_path_removed",
                message: "/status/summary is gone (FAIL_ON_LEGACY=true); read /api/status/summary"
            ).response(requestID: context.requestID)
        } else {
            response = await summary(path: "legacy")
        }
        response.headers[.xStatusPath] = "legacy"
        response.headers[.deprecation] = "@\(Self.legacyDeprecatedAt)"
        response.headers[.link] = "</api/status/summary>; rel=\"successor-version\""
        if let sunset = settings.legacySunset {
            response.headers[.sunset] = Self.httpDate(sunset)
        }
        return response
    }

    /// The LLM assistant's aggregate: readiness, the LLM's path and model presence, the fallback flag,
    /// model counts and the build. `X-Status-Path` says which path was called, to count legacy use.
    func summary(path: String) async -> Response {
        let report = await dependencies.readiness.evaluate()
        let entries = dependencies.registry.entries
        let llm = dependencies.llm
        var json = JSONWriter(capacity: 512)
        json.beginObject()
        json.member("ready", report.isReady)
        json.member("status_ready", report.isReady ? 1 : 0)
        json.key("failing")
        json.beginArray()
        for name in report.failing { json.string(name) }
        json.endArray()
        json.key("status")
        json.beginObject()
        json.member("model_present", llm.map(\.warmup.primaryModelPresent) ?? !entries.isEmpty)
        json.member("fallback", dependencies.llmGateways.contains { $0.isFallbackActive })
        json.endObject()
        json.key("llm")
        writeLLM(to: &json)
        json.key("llm_deployments")
        writeDeployments(to: &json)
        json.key("models")
        json.beginObject()
        json.member("total", entries.count)
        json.member("ready", entries.filter { $0.state.name == "ready" }.count)
        json.endObject()
        json.key("build")
        json.beginObject()
        json.member("sha", dependencies.configuration.server.buildSHA)
        json.member("version", CortexVersion.current)
        json.endObject()
        json.member("uptime_s", Int(Date().timeIntervalSince(dependencies.startedAt)))
        json.endObject()
        var response = Response.json(.ok, json.text)
        response.headers[.xStatusPath] = path
        return response
    }

    /// `{"enabled": false}`, or the default deployment (the LLM assistant's `llm`): its path, whether the
    /// primary has its model, whether a fallback answers, and each provider's circuit.
    private func writeLLM(to json: inout JSONWriter) {
        guard let llm = dependencies.llm else {
            json.beginObject()
            json.member("enabled", false)
            json.endObject()
            return
        }
        Self.write(llm, to: &json)
    }

    /// Every LLM deployment, in the shape of `llm`.
    private func writeDeployments(to json: inout JSONWriter) {
        json.beginArray()
        for gateway in dependencies.llmGateways { Self.write(gateway, to: &json) }
        json.endArray()
    }

    private static func write(_ llm: LLMGateway, to json: inout JSONWriter) {
        json.beginObject()
        json.member("enabled", true)
        json.member("deployment", llm.configuration.deployment)
        json.member("path", llm.warmup.path.rawValue)
        json.member("primary_model_present", llm.warmup.primaryModelPresent)
        json.member("fallback", llm.isFallbackActive)
        if let error = llm.warmup.lastError { json.member("last_poll_error", error) }
        json.key("providers")
        json.beginArray()
        for ((name, provider), state) in zip(zip(llm.providerNames, llm.configuration.providers), llm.breakerStates) {
            json.beginObject()
            json.member("name", name)
            json.member("kind", provider.kind.rawValue)
            json.member("url", provider.url)
            json.member("model", provider.model)
            json.member("circuit", state.name)
            json.endObject()
        }
        json.endArray()
        json.endObject()
    }

    func status() async -> Response {
        let report = await dependencies.readiness.evaluate()
        let now = Date()
        var json = JSONWriter(capacity: 1024)
        json.beginObject()
        json.member("service", "cortex")
        json.member("version", CortexVersion.current)
        json.member("started_at", dependencies.startedAt.ISO8601Format())
        json.member("uptime_s", Int(now.timeIntervalSince(dependencies.startedAt)))
        json.key("build")
        json.beginObject()
        json.member("sha", dependencies.configuration.server.buildSHA)
        json.member("version", CortexVersion.current)
        json.endObject()
        json.member("ready", report.isReady)
        json.key("failing")
        json.beginArray()
        for name in report.failing { json.string(name) }
        json.endArray()
        json.key("checks")
        ProbeController<Context>.write(report.checks, to: &json)

        json.key("model")
        json.beginObject()
        json.member("endpoint_provider", dependencies.configuration.modelEndpoint.provider.rawValue)
        if let remote = dependencies.remoteModel {
            json.member("name", remote.metadata.name)
            json.member("url", remote.wire.target)
            if let remoteModel = remote.wire.remoteModel { json.member("remote_model", remoteModel) }
            json.member("circuit", remote.circuit)
            json.member("fallback_active", remote.isFallbackActive)
        } else {
            json.member("fallback_active", false)
        }
        json.endObject()
        json.key("models")
        json.beginArray()
        // Where each model serves a share: the endpoints whose split names it, with its weight now.
        let splits = dependencies.trafficControls.compactMap { control in control.state.split.map { (control.endpoint, $0) } }
        for entry in dependencies.registry.entries {
            json.beginObject()
            json.member("name", entry.source.name)
            json.member("state", entry.state.name)
            json.member("ready", entry.state.name == "ready")
            json.key("variants")
            json.beginArray()
            for (endpoint, split) in splits {
                for variant in split.variants where variant.model == entry.source.name {
                    json.beginObject()
                    json.member("endpoint", endpoint)
                    json.key("weight")
                    json.number(variant.weight)
                    json.endObject()
                }
            }
            json.endArray()
            switch entry.state {
            case .ready(let model), .warming(let model):
                json.member("version", model.metadata.version)
                json.member("platform", model.metadata.platform)
            case .failed(let reason):
                json.member("reason", reason)
            case .loading:
                break
            }
            json.member("path", entry.source.path)
            if let files = entry.files {
                // Whether the disk still holds what serves (see ReadinessChecks.modelFilesCheck).
                let changes = files.changes()
                let missing = changes.contains { if case .missing = $0 { true } else { false } }
                json.member("file", changes.isEmpty ? "as_loaded" : missing ? "missing" : "changed")
                if !changes.isEmpty { json.member("file_detail", changes.map(\.description).joined(separator: "; ")) }
            }
            json.endObject()
        }
        json.endArray()

        json.key("database")
        json.beginObject()
        json.member("location", dependencies.store.location)
        json.endObject()

        json.key("rate_limit")
        writeRateLimit(to: &json)
        json.key("traffic")
        writeTraffic(dependencies.traffic, to: &json)
        json.key("traffic_endpoints")
        json.beginArray()
        for control in dependencies.trafficControls.dropFirst() { writeTraffic(control, to: &json) }
        json.endArray()
        json.key("llm")
        writeLLM(to: &json)
        json.key("llm_deployments")
        writeDeployments(to: &json)
        json.endObject()
        return Response.json(.ok, json.text)
    }

    /// An endpoint's split (`POST /v1/infer`'s, or a named one's): `split` (on or not), the
    /// variants and weights, the stored `version` applied (0 while the configured settings apply),
    /// the session cookie's name, shadow, and the canary.
    private func writeTraffic(_ traffic: TrafficControl, to json: inout JSONWriter) {
        let settings = traffic.settings
        json.beginObject()
        json.member("endpoint", traffic.endpoint)
        json.member("variant_a", settings.variantA)
        json.member("variant_b", settings.variantB)
        json.member("split", settings.split != nil)
        json.key("ab_weight_a")
        json.number(settings.weightA)
        json.key("ab_weight_b")
        json.number(settings.weightB)
        json.member("version", Int(traffic.version))
        json.key("sticky_cookie")
        if let cookie = settings.stickyCookie { json.string(cookie) } else { json.null() }
        json.member("shadow_enabled", settings.shadowEnabled)
        json.key("canary")
        TrafficControl.writeCanary(settings, analysis: traffic.canary, to: &json)
        json.endObject()
    }

    /// `mode`: `off`, `local` (no Redis configured), `shared` or `fallback` (Redis configured but
    /// not answering: local limits since `since`, for `reason`).
    private func writeRateLimit(to json: inout JSONWriter) {
        let configuration = dependencies.configuration.rateLimit
        json.beginObject()
        if let limit = configuration.limit {
            json.key("rps")
            json.number(configuration.requestsPerSecond)
            json.member("burst", limit.burst)
        }
        json.member("overrides", configuration.overrides.count)
        if let shared = dependencies.sharedRateLimiter {
            let status = shared.status
            json.member("mode", status.shared ? "shared" : "fallback")
            json.member("redis", shared.location)
            json.member("since", status.since.ISO8601Format())
            if !status.shared { json.member("reason", status.reason) }
        } else {
            json.member("mode", configuration.limit == nil && configuration.overrides.isEmpty ? "off" : "local")
        }
        json.endObject()
    }
}
