import CortexCore
public import CortexRuntime
public import Hummingbird

/// Liveness and readiness: `/health` never lies about the process, `/ready` fails before inference would.
public struct ProbeController<Context: RequestIDContext>: Sendable {
    let checks: ReadinessChecks
    let registry: ModelRegistry

    /// The probes (and `/metrics`): what an orchestrator and Prometheus call by the pod's address,
    /// answered whatever `ALLOWED_HOSTS` says.
    static var probeRoutes: Set<String> {
        ["/health", "/healthz", "/ready", "/readyz", "/health/ready", "/api/ready", "/v2/health/live", "/v2/health/ready", "/metrics"]
    }

    /// Routes whose requests are logged at debug level: the probes and the status pages.
    static var quietRoutes: Set<String> {
        probeRoutes.union(["/status", "/status/summary", "/api/status/summary"])
    }

    /// Creates the controller.
    public init(checks: ReadinessChecks, registry: ModelRegistry) {
        self.checks = checks
        self.registry = registry
    }

    /// Adds the probe routes.
    public func addRoutes(to router: Router<Context>) {
        router.get("/health") { _, _ in Self.live }
        router.get("/healthz") { _, _ in Self.live }
        router.get("/v2/health/live") { _, _ in Response.json(.ok, #"{"live":true}"#) }
        for path in ["/ready", "/readyz", "/health/ready", "/api/ready"] {
            router.get(RouterPath(path)) { _, _ in await self.ready() }
        }
        router.get("/v2/health/ready") { _, _ in
            let report = await checks.evaluate()
            return Response.json(report.isReady ? .ok : .serviceUnavailable, report.isReady ? #"{"ready":true}"# : #"{"ready":false}"#)
        }
    }

    /// `{"status":"ok","ok":true}`: the lead-scoring API's `/health` and the A/B image service's `/healthz` shapes in one body.
    static var live: Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: liveBody))
    }

    func ready() async -> Response {
        let report = await checks.evaluate()
        var json = JSONWriter(capacity: 512)
        json.beginObject()
        json.member("ready", report.isReady)
        json.member("status", report.isReady ? "ready" : "not_ready")
        json.member("models_loaded", report.checks.first { $0.name == "models" }?.ok ?? false)
        json.key("failing")
        json.beginArray()
        for name in report.failing { json.string(name) }
        json.endArray()
        json.key("checks")
        Self.write(report.checks, to: &json)
        json.endObject()
        return Response.json(report.isReady ? .ok : .serviceUnavailable, json.text)
    }

    /// `{"database": {"ok": true, "detail": "..."}, ...}`, shared with `/status`.
    static func write(_ checks: [ReadinessReport.Check], to json: inout JSONWriter) {
        json.beginObject()
        for check in checks {
            json.key(check.name)
            json.beginObject()
            json.member("ok", check.ok)
            json.member("detail", check.detail)
            json.endObject()
        }
        json.endObject()
    }

}

/// The liveness body, built once: probes arrive several times a second on every replica.
private let liveBody = ByteBuffer(string: #"{"status":"ok","ok":true}"#)
