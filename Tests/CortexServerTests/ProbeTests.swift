import CortexCore
import CortexRuntime
import CortexServer
import CortexStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

@Suite("Liveness and readiness")
struct ProbeTests {
    @Test("/health and /healthz answer 200 with the seed shapes", arguments: ["/health", "/healthz"])
    func health(path: String) async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            let response = try await client.get(path)
            #expect(response.status == .ok)
            #expect(response.body.jsonObject["status"] as? String == "ok")
            #expect(response.body.jsonObject["ok"] as? Bool == true)
        }
    }

    @Test("/ready and its aliases answer 200 with every check named", arguments: ["/ready", "/readyz", "/health/ready", "/api/ready"])
    func ready(path: String) async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            let response = try await client.get(path)
            #expect(response.status == .ok)
            let body = response.body.jsonObject
            #expect(body["ready"] as? Bool == true)
            #expect(body["models_loaded"] as? Bool == true)
            let checks = body["checks"] as? [String: Any] ?? [:]
            #expect(Set(checks.keys) == ["database", "models", "model_files", "disk", "draining"])
            let live = try await client.get("/v2/health/ready")
            #expect(live.status == .ok)
        }
    }

    @Test("a model that fails to load leaves the others serving and is named in /ready")
    func failedModelAmongGood() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let broken = try directory.write("broken/model.json", #"{"learner": {"objective": 3}}"#)
        let server = try await TestServer.make(models: [
            ModelSource(path: Repository.leadScoring), ModelSource(name: "broken", path: (broken as NSString).deletingLastPathComponent),
        ])
        try await server.test { client in
            let ready = try await client.get("/ready")
            #expect(ready.status == .ok)
            let detail = ((ready.body.jsonObject["checks"] as? [String: Any])?["models"] as? [String: Any])?["detail"] as? String
            #expect(detail?.contains("1 not ready") == true)
            let metadata = try await client.get("/v2/models/broken/ready")
            #expect(metadata.status == .serviceUnavailable)
            let infer = try await client.post(
                "/v2/models/broken/infer",
                json: #"{"inputs":[{"name":"features","shape":[1,1],"datatype":"FP32","data":[1]}]}"#
            )
            #expect(infer.status == .serviceUnavailable)
            #expect(infer.body.jsonObject["code"] as? String == "model_not_ready")
            #expect((infer.body.jsonObject["error"] as? String)?.contains("model.json") == true)

            // /status: every model with its state, the reason for the broken one, no key needed.
            let status = try await client.get("/status")
            #expect(status.status == .ok)
            let body = status.body.jsonObject
            #expect(body["ready"] as? Bool == true)
            #expect((body["uptime_s"] as? Int).map { $0 >= 0 } == true)
            let models = body["models"] as? [[String: Any]] ?? []
            #expect(models.map { $0["name"] as? String } == ["lead-scoring", "broken"])
            #expect(models.map { $0["state"] as? String } == ["ready", "failed"])
            #expect(models[0]["platform"] as? String == "xgboost_json")
            #expect((models[1]["reason"] as? String)?.contains("model.json") == true)
            #expect((body["rate_limit"] as? [String: Any])?["mode"] as? String == "off")
            #expect((body["checks"] as? [String: Any])?.keys.sorted() == ["database", "disk", "draining", "model_files", "models"])
        }
        #expect(server.logs.events(named: "MODEL_LOAD_FAIL").first?.metadata["reason"]?.contains("model.json") == true)
    }

    @Test("a model warming up keeps /ready at 503 (detail 'warming') until its warm-up runs finish")
    func warming() async throws {
        let server = try await TestServer.make(models: [])
        let gate = Gate()
        let model = GatedModel(gate: gate)
        #expect(
            server.dependencies.registry.register(model, source: ModelSource(name: "slow", path: "slow"), warmupRuns: 3).name == "warming")
        try await server.test { client in
            let warming = try await client.get("/ready")
            #expect(warming.status == .serviceUnavailable)
            let detail = ((warming.body.jsonObject["checks"] as? [String: Any])?["models"] as? [String: Any])?["detail"] as? String
            #expect(detail?.contains("slow: warming") == true, "\(detail ?? "")")
            let infer = try await client.post(
                "/v2/models/slow/infer", json: #"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}"#)
            #expect(infer.status == .serviceUnavailable)
            #expect((infer.body.jsonObject["error"] as? String)?.contains("warming up") == true)
            gate.open()
            var status = warming.status
            let deadline = ContinuousClock.now + .seconds(30)
            while status != .ok, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
                status = try await client.get("/ready").status
            }
            #expect(status == .ok)
            #expect(gate.passed.withLock { $0 } == 3)
        }
    }

    @Test("no model loaded: /ready is 503 and names the models check and the file at fault")
    func noModel() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let broken = try directory.write("m.json", #"{"learner": {}}"#)
        let server = try await TestServer.make(models: [ModelSource(path: broken)])
        try await server.test { client in
            let response = try await client.get("/ready")
            #expect(response.status == .serviceUnavailable)
            let body = response.body.jsonObject
            #expect(body["failing"] as? [String] == ["models"])
            #expect(body["models_loaded"] as? Bool == false)
            let detail = ((body["checks"] as? [String: Any])?["models"] as? [String: Any])?["detail"] as? String ?? ""
            #expect(detail.contains("m.json"))
            #expect(detail.contains("learner"))
            // Liveness does not depend on models.
            #expect(try await client.get("/health").status == .ok)
        }
    }

    @Test("a database that cannot take a write turns /ready 503 until it can")
    func lockedDatabase() async throws {
        let server = try await TestServer.make()
        let path = try #require(server.dependencies.store.localPath)
        try await server.test { client in
            #expect(try await client.get("/ready").status == .ok)
            // Another process holding the write lock is what "database locked" looks like in production.
            let other = try SQLiteConnection(path: path)
            _ = try other.execute("BEGIN EXCLUSIVE", [])
            let locked = try await client.get("/ready")
            #expect(locked.status == .serviceUnavailable)
            #expect(locked.body.jsonObject["failing"] as? [String] == ["database"])
            _ = try other.execute("ROLLBACK", [])
            other.close()
            #expect(try await client.get("/ready").status == .ok)
        }
    }

    @Test("free disk below MIN_FREE_DISK_MB turns /ready 503")
    func lowDisk() async throws {
        let server = try await TestServer.make { $0.readiness.minFreeDiskMB = 10_000_000 }
        try await server.test { client in
            let response = try await client.get("/ready")
            #expect(response.status == .serviceUnavailable)
            #expect(response.body.jsonObject["failing"] as? [String] == ["disk"])
        }
    }

    @Test("draining turns /ready 503 while /health stays 200")
    func draining() async throws {
        let server = try await TestServer.make()
        let drain = server.dependencies.drain
        try await server.test { client in
            #expect(try await client.get("/ready").status == .ok)
            drain.begin()
            let response = try await client.get("/ready")
            #expect(response.status == .serviceUnavailable)
            #expect(response.body.jsonObject["failing"] as? [String] == ["draining"])
            #expect(try await client.get("/v2/health/ready").status == .serviceUnavailable)
            #expect(try await client.get("/health").status == .ok)
            #expect(try await client.get("/v2/health/live").status == .ok)
        }
        #expect(server.logs.events(named: "READY_CHANGED").count >= 2)
    }
}

/// Blocks its callers until opened; counts who passed.
final class Gate: Sendable {
    private let condition = NSCondition()
    private let isOpen = Mutex(false)
    /// Calls to ``wait()`` that returned.
    let passed = Mutex(0)

    func open() {
        condition.lock()
        isOpen.withLock { $0 = true }
        condition.broadcast()
        condition.unlock()
    }

    func wait() {
        condition.lock()
        while !isOpen.withLock({ $0 }) { condition.wait() }
        condition.unlock()
        passed.withLock { $0 += 1 }
    }
}

/// A model whose inferences wait for a gate: warm-up that finishes when the test says so.
struct GatedModel: InferenceModel {
    let gate: Gate
    let metadata = ModelMetadata(
        name: "slow", version: "1", platform: "test",
        inputs: [TensorSpec(name: "x", datatype: .fp32, shape: TensorShape([-1]))],
        outputs: [TensorSpec(name: "y", datatype: .fp32, shape: TensorShape([-1]))])

    func infer(_ inputs: [Tensor]) throws -> [Tensor] {
        gate.wait()
        return inputs
    }
}
