import CortexCore
import CortexRuntime
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

@testable import CortexServer

/// Shadow traffic and the canary over HTTP, on the bundled vA and vB (vB wrapped where a test needs
/// it slow or failing).
@Suite("Shadow traffic and canary analysis (SHADOW_ENABLED, CANARY_ENABLED)")
struct ShadowCanaryTests {
    /// Holds runs while it is closed, and counts them. A held run waits without a thread (a
    /// blocked thread of the cooperative pool could starve the very test that opens the gate),
    /// and a cancelled one (a test that threw) goes on, so nothing waits on it for ever.
    final class Gate: Sendable {
        let runs = Atomic<Int>(0)
        private let state: Mutex<(isOpen: Bool, next: Int, waiting: [Int: CheckedContinuation<Void, Never>])>

        init(open: Bool = false) { state = Mutex((open, 0, [:])) }

        /// Counts a run and waits until the gate is open (or the task is cancelled); returns the run's number (from 1).
        func pass() async -> Int {
            let run = runs.add(1, ordering: .relaxed).newValue
            let id = state.withLock { state in
                state.next += 1
                return state.next
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let proceed = state.withLock { state in
                        guard !state.isOpen, !Task.isCancelled else { return true }
                        state.waiting[id] = continuation
                        return false
                    }
                    if proceed { continuation.resume() }
                }
            } onCancel: {
                state.withLock { $0.waiting.removeValue(forKey: id) }?.resume()
            }
            return run
        }

        func open() {
            let waiting = state.withLock { state in
                state.isOpen = true
                defer { state.waiting = [:] }
                return state.waiting
            }
            for continuation in waiting.values { continuation.resume() }
        }
    }

    /// A real model behind a gate that can fail every `failEvery`-th run (warm-ups and direct
    /// `infer` calls pass straight through).
    struct WrappedModel: InferenceModel {
        let inner: any InferenceModel
        let gate: Gate
        let failEvery: Int

        init(_ inner: any InferenceModel, gate: Gate = Gate(open: true), failEvery: Int = 0) {
            self.inner = inner
            self.gate = gate
            self.failEvery = failEvery
        }

        var metadata: ModelMetadata { inner.metadata }
        var image: ImagePreprocessing? { inner.image }
        var lifetime: AnyObject? { inner.lifetime }

        struct Failure: Error {}

        func infer(_ inputs: [Tensor]) throws -> [Tensor] { try inner.infer(inputs) }

        func predict(_ inputs: [Tensor]) async throws -> Prediction {
            let run = await gate.pass()
            if failEvery > 0, run % failEvery == 0 { throw Failure() }
            return try await inner.predict(inputs)
        }
    }

    static let demo: HTTPFields = [.xAPIKey: CortexConfiguration.demoAPIKey]

    /// The digit images, each as a `/v1/infer` body at 8x8 (`extra` added to it).
    static func digits(extra: String = "") throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: Repository.path("models/digits"))
            .filter { $0.hasSuffix(".png") || $0.hasSuffix(".jpg") }.sorted()
            .map { ImageTests.request(try ImageTests.base64($0), size: 8, extra: extra) }
    }

    /// Waits (up to a minute: a bound on a hang, not on speed) until `condition` holds.
    static func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    static func metric(_ sample: String, _ client: some TestClientProtocol) async throws -> Double {
        MetricsTests.value(of: sample, in: try await client.get("/metrics").body.text) ?? 0
    }

    @Test("shadow: the copies are never billed and never counted against a rate limit")
    func agreement() async throws {
        let server = try await TestServer.make(models: Repository.imageModels) { configuration in
            configuration.auth.requireAPIKey = true
            configuration.auth.demo = .on
            configuration.auth.adminToken = AdminAPITests.adminToken
            configuration.billing.prices = ["vA": Credits(decimal: "0.01") ?? .zero, "vB": Credits(decimal: "1") ?? .zero]
            configuration.billing.demoCredits = Credits(decimal: "100") ?? .zero
            // vB allows one request per 100 s: a copy counted against it would exhaust it at once.
            configuration.rateLimit.overrides = [.init(tenant: "demo", model: "vB", requestsPerSecond: 0.01, burst: 1)]
            configuration.traffic.shadowEnabled = true
        }
        let bodies = try Self.digits()
        try await server.test { client in
            for body in bodies {
                let answer = try await client.post("/v1/infer", json: body, headers: Self.demo)
                #expect(answer.status == .ok && answer.headers[.xModelVariant] == "vA", "\(answer.body.text)")
                #expect(answer.headers[.xCreditsCharged] == "0.01", "the shadow's price is not on the answer")
            }
            let compared = #"shadow_requests_total{endpoint="/v1/infer",shadow="vB",outcome="compared"}"#
            #expect(try await Self.eventually { try await Self.metric(compared, client) == Double(bodies.count) })

            // Nothing of the copies reached the ledger or vB's limit.
            let tenant = try #require(try await server.dependencies.store.tenant(named: "demo"))
            let usage = try await server.dependencies.store.ledger.usage(tenantID: tenant.id)
            #expect(usage.map(\.model) == ["vA"] && usage.first?.requests == Int64(bodies.count), "\(usage)")
            let namingB = String(bodies[0].dropLast()) + #","model":"vB"}"#
            let first = try await client.post("/v1/infer", json: namingB, headers: Self.demo)
            #expect(first.status == .ok, "vB's one request in 100 s is still there: \(first.body.text)")
            #expect(try await client.post("/v1/infer", json: namingB, headers: Self.demo).status == .tooManyRequests, "the limit is real")
        }
    }

    @Test("shadow agreement equals a direct comparison of vA and vB on every bundled digit")
    func agreementFigures() async throws {
        let server = try await TestServer.make(models: Repository.imageModels) { $0.traffic.shadowEnabled = true }
        let bodies = try Self.digits()
        try await server.test { client in
            // Directly, first: each image on vA and on vB (a request naming a model is not shadowed).
            var agreed = 0
            for body in bodies {
                var labels: [String] = []
                for model in ["vA", "vB"] {
                    let answer = try await client.post("/v1/infer", json: String(body.dropLast()) + #","model":"\#(model)"}"#)
                    labels.append(try #require(answer.body.jsonObject["label"] as? String, "\(answer.body.text)"))
                }
                if labels[0] == labels[1] { agreed += 1 }
            }
            let shadowed = #"shadow_requests_total{endpoint="/v1/infer",shadow="vB",outcome="compared"}"#
            #expect(try await Self.metric(shadowed, client) == 0, "requests naming a model have no copy")
            for body in bodies { #expect(try await client.post("/v1/infer", json: body).status == .ok) }
            #expect(try await Self.eventually { try await Self.metric(shadowed, client) == Double(bodies.count) })
            let labels = #"endpoint="/v1/infer",primary="vA",shadow="vB""#
            let agree = try await Self.metric("shadow_comparisons_total{\(labels),result=\"agree\"}", client)
            let disagree = try await Self.metric("shadow_comparisons_total{\(labels),result=\"disagree\"}", client)
            #expect(agree == Double(agreed) && disagree == Double(bodies.count - agreed), "direct: \(agreed) of \(bodies.count)")
            let ratio = try await Self.metric("shadow_agreement_ratio{\(labels)}", client)
            #expect(abs(ratio - Double(agreed) / Double(bodies.count)) < 1e-12)
        }
    }

    @Test(
        "a shadow model that never finishes slows no primary answer: with it stuck, the queue fills and further copies are dropped and counted"
    )
    func slowShadow() async throws {
        let server = try await TestServer.make(models: Repository.imageModels) { configuration in
            configuration.traffic.shadowEnabled = true
            configuration.traffic.shadowQueueDepth = 2
        }
        let registry = server.dependencies.registry
        let gate = Gate()
        registry.register(WrappedModel(try registry.model(named: "vB"), gate: gate), source: ModelSource(name: "vB", path: "gated"))
        let body = try Self.digits()[0]
        try await server.test { client in
            #expect(try await client.post("/v1/infer", json: body).status == .ok)
            // The worker has the first copy and is stuck in vB: from now on nothing of the shadow moves.
            #expect(try await Self.eventually { gate.runs.load(ordering: .relaxed) == 1 })
            for _ in 0..<5 {
                let answer = try await client.post("/v1/infer", json: body)
                #expect(answer.status == .ok && answer.headers[.xModelVariant] == "vA", "answered while the shadow is stuck")
            }
            let dropped = #"shadow_requests_total{endpoint="/v1/infer",shadow="vB",outcome="dropped"}"#
            let compared = #"shadow_requests_total{endpoint="/v1/infer",shadow="vB",outcome="compared"}"#
            // One running, two waiting (SHADOW_QUEUE_DEPTH=2): three of the five later copies dropped.
            #expect(try await Self.metric(dropped, client) == 3)
            #expect(try await Self.metric(compared, client) == 0)
            gate.open()
            #expect(try await Self.eventually { try await Self.metric(compared, client) == 3 })
            #expect(gate.runs.load(ordering: .relaxed) == 3)
        }
    }

    /// A server whose canary steps vB through 20% and 60% with 15 answers per variant a step, and
    /// latency that can never breach (these tests are about outcomes, not this machine's timing).
    static func canaryServer(_ wrap: @escaping @Sendable (any InferenceModel) -> WrappedModel) async throws -> (TestServer, Gate) {
        let server = try await TestServer.make(models: Repository.imageModels) { configuration in
            configuration.auth.adminToken = AdminAPITests.adminToken
            configuration.traffic.canaryEnabled = true
            configuration.traffic.canary.steps = [20, 60, 100]
            configuration.traffic.canary.minRequests = 15
            configuration.traffic.canary.maxErrorRateIncrease = 0.05
            configuration.traffic.canary.maxLatencyRatio = 1000
            configuration.traffic.canary.latencyAllowanceMilliseconds = 60_000
        }
        let registry = server.dependencies.registry
        let candidate = wrap(try registry.model(named: "vB"))
        registry.register(candidate, source: ModelSource(name: "vB", path: "candidate"))
        return (server, candidate.gate)
    }

    /// Sends digits to `/v1/infer` until the canary has ended (at most 3,000), counting the statuses.
    static func driveCanary(_ client: some TestClientProtocol, _ server: TestServer) async throws -> [Int: Int] {
        let body = try Self.digits()[0]
        var statuses: [Int: Int] = [:]
        for _ in 0..<3000 where server.dependencies.traffic.settings.canaryEnabled {
            statuses[Int(try await client.post("/v1/infer", json: body).status.code), default: 0] += 1
        }
        return statuses
    }

    @Test("a canary failing a third of its requests is rolled back to 0% at once; the decision and its figures are logged and stored")
    func rolledBack() async throws {
        let (server, candidate) = try await Self.canaryServer { WrappedModel($0, failEvery: 3) }
        try await server.test { client in
            let status = try await client.get("/status").body.jsonObject["traffic"] as? [String: Any]
            #expect((status?["canary"] as? [String: Any])?["share"] as? Double == 0.2)
            let statuses = try await Self.driveCanary(client, server)
            #expect(!server.dependencies.traffic.settings.canaryEnabled, "rolled back: \(statuses)")
            #expect(server.dependencies.traffic.settings.weightB == 0)
            #expect(try await Self.eventually { !server.logs.events(named: "CANARY_ROLLED_BACK").isEmpty })
            let event = try #require(server.logs.events(named: "CANARY_ROLLED_BACK").first)
            #expect(event.metadata["reason"] == "error rate" && event.metadata["share"] == "0.2", "\(event.metadata)")
            let rate = try #require(event.metadata["candidate_error_rate"].flatMap(Double.init))
            #expect(rate > 0.3 && rate < 0.4 && event.metadata["primary_error_rate"] == "0.0", "\(event.metadata)")
            #expect(Int(event.metadata["candidate_requests"] ?? "")! >= 15 && Int(event.metadata["primary_requests"] ?? "")! >= 15)
            #expect(server.logs.events(named: "CANARY_STEP").isEmpty && server.logs.events(named: "CANARY_PROMOTED").isEmpty)
            // Stored, by the canary, so every replica (and a restart) follows.
            let history = try await server.dependencies.store.trafficChanges(endpoint: "/v1/infer")
            #expect(history.first?.actor == "canary" && history.first?.settings.contains(#""canary_enabled":false"#) == true)
            let runs = candidate.runs.load(ordering: .relaxed)
            for _ in 0..<50 {
                #expect(try await client.post("/v1/infer", json: try Self.digits()[0]).headers[.xModelVariant] == "vA")
            }
            #expect(candidate.runs.load(ordering: .relaxed) == runs, "no request reaches vB after the rollback")
            let metrics = try await client.get("/metrics").body.text
            #expect(MetricsTests.value(of: #"canary_weight{endpoint="/v1/infer"}"#, in: metrics) == 0)
            #expect(MetricsTests.value(of: #"canary_decisions_total{endpoint="/v1/infer",decision="rolled_back"}"#, in: metrics) == 1)
        }
    }

    @Test("a healthy canary is promoted through every step: 20% -> 60%, then all traffic on vB, each decision logged with its figures")
    func promoted() async throws {
        let (server, _) = try await Self.canaryServer { WrappedModel($0) }
        try await server.test { client in
            let statuses = try await Self.driveCanary(client, server)
            #expect(statuses == [200: statuses[200] ?? -1], "every request answered: \(statuses)")
            let settings = server.dependencies.traffic.settings
            #expect(!settings.canaryEnabled && settings.weightA == 0 && settings.weightB == 1)
            #expect(try await Self.eventually { !server.logs.events(named: "CANARY_PROMOTED").isEmpty })
            let steps = server.logs.events(named: "CANARY_STEP")
            #expect(steps.map { $0.metadata["share"] } == ["0.2"] && steps.first?.metadata["to_share"] == "0.6")
            let promotedEvent = try #require(server.logs.events(named: "CANARY_PROMOTED").first)
            #expect(promotedEvent.metadata["share"] == "0.6" && promotedEvent.metadata["candidate_error_rate"] == "0.0")
            #expect(
                Int(promotedEvent.metadata["candidate_requests"] ?? "")! >= 15
                    && Int(promotedEvent.metadata["primary_requests"] ?? "")! >= 15)
            let history = try await server.dependencies.store.trafficChanges(endpoint: "/v1/infer")
            #expect(history.map(\.actor) == ["canary", "canary"], "the step and the promotion, stored")
            for _ in 0..<20 {
                #expect(try await client.post("/v1/infer", json: try Self.digits()[0]).headers[.xModelVariant] == "vB")
            }
            let config = try await client.get("/admin/config", headers: AdminAPITests.admin).body.jsonObject
            #expect(config["canary_enabled"] as? Bool == false && config["ab_weight_b"] as? Double == 1)
        }
    }

    @Test("a replayed answer (the same Idempotency-Key) ran no model, so it is no evidence for the canary")
    func replayIsNoEvidence() async throws {
        let server = try await TestServer.make(models: Repository.imageModels) { configuration in
            configuration.auth.requireAPIKey = true
            configuration.auth.demo = .on
            configuration.billing.prices = ["vA": Credits(decimal: "0.01") ?? .zero, "vB": Credits(decimal: "0.01") ?? .zero]
            configuration.traffic.canaryEnabled = true
            configuration.traffic.canary.minRequests = 1000
        }
        let body = try Self.digits()[0]
        try await server.test { client in
            var headers = Self.demo
            headers[.idempotencyKey] = "replay-1"
            for _ in 0..<5 { #expect(try await client.post("/v1/infer", json: body, headers: headers).status == .ok) }
            let canary = try #require(server.dependencies.traffic.canary)
            #expect(canary.primary.requests + canary.candidate.requests == 1, "one run, four replays")
        }
    }
}
