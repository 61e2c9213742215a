import CortexCore
import CortexRuntime
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import CortexServer

/// The A/B split of `POST /v1/infer`: by weight, sticky by session on every replica, moving as few
/// sessions as a weight change must; then over HTTP with the bundled vA and vB.
@Suite("Traffic split (AB_WEIGHT_A, AB_WEIGHT_B, STICKY_COOKIE)")
struct TrafficSplitTests {
    static func split(_ a: Double, _ b: Double) throws -> TrafficSplit {
        try #require(TrafficSplit([.init(model: "vA", weight: a), .init(model: "vB", weight: b)]))
    }

    @Test("10,000 requests at 0.9/0.1 split within 3 standard deviations; a variant at weight 0 gets none")
    func weights() throws {
        let split = try Self.split(0.9, 0.1)
        let generator = RequestIDGenerator()
        let toB = (0..<10_000).filter { _ in split.variant(for: generator.next()) == "vB" }.count
        // Binomial: mean 1,000, standard deviation sqrt(10,000 * 0.1 * 0.9) = 30.
        #expect((910...1090).contains(toB), "\(toB) of 10,000 went to vB")
        let onlyA = try Self.split(1, 0)
        #expect((0..<1000).allSatisfy { onlyA.variant(for: "session-\($0)") == "vA" })
        let onlyB = try Self.split(0, 3)
        #expect((0..<1000).allSatisfy { onlyB.variant(for: "session-\($0)") == "vB" })
    }

    @Test("a session keeps its variant, and two replicas (two splits built apart) assign every session alike")
    func sticky() throws {
        let replicaOne = try Self.split(0.5, 0.5)
        let replicaTwo = try Self.split(0.5, 0.5)
        let sessions = (0..<1000).map { "browser-\($0)" }
        let first = sessions.map { replicaOne.variant(for: $0) }
        #expect(sessions.map { replicaOne.variant(for: $0) } == first, "stable within a replica")
        #expect(sessions.map { replicaTwo.variant(for: $0) } == first, "and across replicas")
        #expect(Set(first) == ["vA", "vB"])
    }

    @Test("0.9/0.1 to 0.8/0.2 moves only sessions from vA to vB, about a tenth of them, none back")
    func minimalMoves() throws {
        let before = try Self.split(0.9, 0.1)
        let after = try Self.split(0.8, 0.2)
        let sessions = (0..<10_000).map { "s\($0)" }
        var moved = 0
        for session in sessions where before.variant(for: session) != after.variant(for: session) {
            #expect(before.variant(for: session) == "vA" && after.variant(for: session) == "vB", "\(session) moved back")
            moved += 1
        }
        // Sessions whose point is in [0.8, 0.9): mean 1,000, standard deviation 30.
        #expect((910...1090).contains(moved), "\(moved) of 10,000 sessions moved")
    }

    @Test("points spread over [0, 1) and do not depend on the process: the hash is fixed")
    func points() throws {
        let points = (0..<10_000).map { TrafficSplit.point(of: "key-\($0)") }
        #expect(points.allSatisfy { (0..<1).contains($0) })
        let lowHalf = points.filter { $0 < 0.5 }.count
        #expect((4850...5150).contains(lowHalf))
        // FNV-1a and SplitMix64 are fixed functions: a key's point never changes between releases,
        // so replicas running different builds still agree (values computed independently in Python).
        #expect(TrafficSplit.point(of: "session-1") == 0.5609938213330858)
        #expect(TrafficSplit.point(of: "user-42") == 0.4768919313585631)
        #expect(TrafficSplit([.init(model: "a", weight: -1), .init(model: "b", weight: 1)]) == nil)
        #expect(TrafficSplit([.init(model: "a", weight: 0), .init(model: "b", weight: 0)]) == nil)
    }

    @Test(
        "bad traffic settings stop start-up naming the setting",
        arguments: [
            (["AB_WEIGHT_A": "-1"], "AB_WEIGHT_A"),
            (["AB_WEIGHT_A": "0", "AB_WEIGHT_B": "0"], "AB_WEIGHT_A"),
            (["AB_WEIGHT_B": "lots"], "AB_WEIGHT_B"),
            (["AB_WEIGHT_B": "0.5", "IMAGE_MODEL": "vB"], "IMAGE_MODEL"),
            (["STICKY_COOKIE": "bad name"], "STICKY_COOKIE"),
            (["SHADOW_ENABLED": "true", "MODEL_PATH": "models/lead-scoring"], "SHADOW_ENABLED"),
            (["CANARY_ENABLED": "1", "MODEL_PATH": "models/lead-scoring"], "CANARY_ENABLED"),
            (["CANARY_ENABLED": "maybe"], "CANARY_ENABLED"),
            (["SHADOW_QUEUE_DEPTH": "0"], "SHADOW_QUEUE_DEPTH"),
            (["CANARY_STEPS": "50,25,100"], "CANARY_STEPS"),
            (["CANARY_STEPS": "0,50"], "CANARY_STEPS"),
            (["CANARY_STEPS": "5,150"], "CANARY_STEPS"),
            (["CANARY_MIN_REQUESTS": "0"], "CANARY_MIN_REQUESTS"),
            (["CANARY_MAX_LATENCY_RATIO": "0.5"], "CANARY_MAX_LATENCY_RATIO"),
            (["CANARY_MAX_ERROR_RATE_INCREASE": "2"], "CANARY_MAX_ERROR_RATE_INCREASE"),
        ]
    )
    func badSettings(environment: [String: String], key: String) {
        #expect {
            try CortexConfiguration.load(file: nil, environment: environment)
        } throws: { error in
            (error as? ConfigurationError)?.key == key
        }
    }

    @Test("the runbook's variables make the split; without them /v1/infer stays on IMAGE_MODEL")
    func settings() throws {
        let config = try CortexConfiguration.load(
            file: nil, environment: ["AB_WEIGHT_A": "0.9", "AB_WEIGHT_B": "0.1", "STICKY_COOKIE": "ab_session", "SHADOW_ENABLED": "false"])
        #expect(config.traffic.split == (try Self.split(0.9, 0.1)))
        #expect(config.traffic.stickyCookie == "ab_session")
        #expect(try CortexConfiguration.load(file: nil, environment: [:]).traffic.split == nil)
    }

    /// The statuses of 4 clients each sending `body` to `/v1/infer` 40 times while `change` runs,
    /// with the statuses `change` returns.
    static func underLoad(
        _ client: some TestClientProtocol, body: String, alongside change: @escaping @Sendable () async throws -> [Int]
    ) async throws -> [Int] {
        try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var seen: [Int] = []
                    for _ in 0..<40 { seen.append(Int(try await client.post("/v1/infer", json: body).status.code)) }
                    return seen
                }
            }
            group.addTask(operation: change)
            return try await group.reduce(into: []) { $0 += $1 }
        }
    }

    static func digit() throws -> String {
        ImageTests.request(try ImageTests.base64("digit3_0.png"), size: 8)
    }

    @Test("AB_WEIGHT_B=1 sends /v1/infer to vB and says so; a model named in the body is served as asked")
    func allToB() async throws {
        let server = try await TestServer.make(models: Repository.imageModels) { configuration in
            configuration.traffic.weightA = 0
            configuration.traffic.weightB = 1
        }
        try await server.test { client in
            let split = try await client.post("/v1/infer", json: try Self.digit())
            #expect(split.status == .ok)
            #expect(split.headers[.xModelVariant] == "vB" && split.body.jsonObject["model"] as? String == "vB")
            let named = try await client.post(
                "/v1/infer", json: ImageTests.request(try ImageTests.base64("digit3_0.png"), size: 8, extra: #","model":"vA""#))
            #expect(named.headers[.xModelVariant] == "vA" && named.body.jsonObject["model"] as? String == "vA")
            let metrics = try await client.get("/metrics").body.text
            #expect(metrics.contains(#"traffic_requests_total{endpoint="/v1/infer",variant="vB"} 1"#))
            // The split's request is in the variant's series; the one naming its model is not.
            #expect(MetricsTests.value(of: #"inference_outcome_total{model="vB",outcome="success",variant="vB"}"#, in: metrics) == 1)
            #expect(MetricsTests.value(of: #"inference_latency_seconds_count{model="vB",variant="vB"}"#, in: metrics) == 1)
            #expect(MetricsTests.value(of: #"inference_outcome_total{model="vA",outcome="success"}"#, in: metrics) == 1)
            #expect(!metrics.contains(#"inference_outcome_total{model="vA",outcome="success",variant"#))
        }
        // The split's choice is on the model's lines; every /v1/infer answer's REQ_END names its variant.
        #expect(server.logs.events(named: "INFERENCE_SUCCESS").map { $0.metadata["variant"] } == ["vB", nil])
        #expect(server.logs.events(named: "REQ_END").compactMap { $0.metadata["variant"] } == ["vB", "vA"])
    }

    @Test("with STICKY_COOKIE the first answer sets the session cookie; the cookie, or X-Session-ID, keeps its variant")
    func stickyOverHTTP() async throws {
        let server = try await TestServer.make(models: Repository.imageModels) { configuration in
            configuration.traffic.weightB = 1
            configuration.traffic.stickyCookie = "ab_session"
        }
        try await server.test { client in
            let first = try await client.post("/v1/infer", json: try Self.digit())
            #expect(first.status == .ok, "\(first.body.text)")
            let cookie = try #require(first.headers[.setCookie], "\(first.headers)")
            #expect(cookie.hasPrefix("ab_session=") && cookie.contains("HttpOnly"))
            let session = String(cookie.dropFirst("ab_session=".count).prefix { $0 != ";" })
            let expected = try Self.split(1, 1).variant(for: session)
            var seen: Set<String> = []
            for _ in 0..<20 {
                let again = try await client.post(
                    "/v1/infer", json: try Self.digit(), headers: [.cookie: "theme=dark; ab_session=\(session)"])
                #expect(again.headers[.setCookie] == nil, "a known session gets no new cookie")
                seen.insert(again.headers[.xModelVariant] ?? "?")
            }
            #expect(seen == [expected])
            var byHeader: Set<String> = []
            for _ in 0..<20 {
                let response = try await client.post("/v1/infer", json: try Self.digit(), headers: [.xSessionID: session])
                byHeader.insert(response.headers[.xModelVariant] ?? "?")
            }
            #expect(byHeader == [expected], "an API client's X-Session-ID places it as the cookie does")
        }
    }

    @Test("GET and POST /admin/config: the runbook's switches, changed without a restart; bad bodies 422 naming the field, nothing applied")
    func adminConfig() async throws {
        let server = try await TestServer.make(models: Repository.imageModels) { $0.auth.adminToken = AdminAPITests.adminToken }
        try await server.test { client in
            #expect(try await client.get("/admin/config").status == .unauthorized)
            let wrong: HTTPFields = [.authorization: "Bearer admin-token-0123456789abcdeX"]
            #expect(try await client.get("/admin/config", headers: wrong).status == .unauthorized)
            let initial = try await client.get("/admin/config", headers: AdminAPITests.admin)
            #expect(initial.status == .ok)
            let config = initial.body.jsonObject
            #expect(config["split"] as? Bool == false && config["ab_weight_a"] as? Double == 1 && config["ab_weight_b"] as? Double == 0)
            let variants = try #require(config["variants"] as? [[String: Any]])
            #expect(variants.map { $0["name"] as? String } == ["vA", "vB"] && variants.allSatisfy { $0["state"] as? String == "ready" })
            #expect(try await client.post("/v1/infer", json: try Self.digit()).headers[.xModelVariant] == "vA")

            let changed = try await client.post("/admin/config", json: #"{"ab_weight_a":0,"ab_weight_b":1}"#, headers: AdminAPITests.admin)
            #expect(changed.status == .ok && changed.body.jsonObject["split"] as? Bool == true)
            #expect(try await client.post("/v1/infer", json: try Self.digit()).headers[.xModelVariant] == "vB", "applied at once")

            for (body, field) in [
                (#"{"ab_weight_a":0.9,"ab_weight_b":0.1,"shadow_enabled":"yes"}"#, "shadow_enabled"),
                (#"{"canary_enabled":true,"canary_step":4}"#, "canary_step"),
                (#"{"canary_step":1.5}"#, "canary_step"),
                (#"{"ab_weight_b":-1}"#, "ab_weight_b"),
                (#"{"ab_weight_a":0,"ab_weight_b":0}"#, "ab_weight_a"),
                (#"{"ab_weight_a":"0.5"}"#, "ab_weight_a"),
                (#"{"weight":1}"#, "weight"),
            ] {
                let refused = try await client.post("/admin/config", json: body, headers: AdminAPITests.admin)
                #expect(refused.status == .unprocessableContent, "\(body)")
                #expect(refused.body.jsonObject["field"] as? String == field, "\(body): \(refused.body.text)")
            }
            let after = try await client.get("/admin/config", headers: AdminAPITests.admin).body.jsonObject
            #expect(after["ab_weight_a"] as? Double == 0 && after["ab_weight_b"] as? Double == 1, "a refused change applies nothing")
            let status = try #require(try await client.get("/status").body.jsonObject["traffic"] as? [String: Any])
            #expect(status["split"] as? Bool == true && status["ab_weight_b"] as? Double == 1 && status["version"] as? Int == 1)
        }
        let changes = server.logs.events(named: "TRAFFIC_CONFIG_CHANGED")
        #expect(changes.count == 1 && changes.first?.metadata["after"] == "vA=0.0 vB=1.0 shadow=off canary=off")
    }

    @Test(
        "stored settings that are not JSON, or not valid switches, are refused at the poll: the split in force stays, TRAFFIC_SYNC_FAIL says why"
    )
    func badStoredSettings() async throws {
        let server = try await TestServer.make(models: Repository.imageModels)
        let store = server.dependencies.store
        for document in ["not json", #"{"ab_weight_b":-1}"#] {
            _ = try await store.saveTrafficSettings(endpoint: "/v1/infer", settings: document, actor: "test")
            await server.dependencies.trafficSyncs[0].poll()
        }
        #expect(server.dependencies.traffic.version == 0 && server.dependencies.traffic.settings.weightB == 0)
        let failures = server.logs.events(named: "TRAFFIC_SYNC_FAIL")
        #expect(failures.map { $0.metadata["version"] } == ["1", "2"], "\(failures.map(\.metadata))")
        try await server.test { _ in }
    }

    @Test("a change is stored: a second replica on the same PostgreSQL applies it at its next poll, a restart keeps it")
    func sharedAndDurable() async throws {
        let first = try await TestServer.make(models: Repository.imageModels, database: .postgres) {
            $0.auth.adminToken = AdminAPITests.adminToken
        }
        let database = first.dependencies.configuration.database
        try await first.test { client in
            let second = try await TestServer.make(models: Repository.imageModels) { $0.database = database }
            let changed = try await client.post("/admin/config", json: #"{"ab_weight_a":0,"ab_weight_b":1}"#, headers: AdminAPITests.admin)
            #expect(changed.body.jsonObject["version"] as? Int == 1)
            #expect(second.dependencies.traffic.settings.weightB == 0, "not yet polled")
            await second.dependencies.trafficSyncs[0].poll()
            #expect(second.dependencies.traffic.version == 1)
            try await second.test { other in
                let answer = try await other.post("/v1/infer", json: try Self.digit())
                #expect(answer.headers[.xModelVariant] == "vB")
            }
            #expect(second.logs.events(named: "TRAFFIC_CONFIG_APPLIED").first?.metadata["version"] == "1")

            // A restart (a new server on the same database) starts on the stored version.
            let third = try await TestServer.make(models: Repository.imageModels) { $0.database = database }
            #expect(third.dependencies.traffic.version == 1 && third.dependencies.traffic.settings.weightA == 0)
            try await third.test { _ in }
        }
    }

    @Test("cortex traffic set, show and history against the database")
    func command() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = directory.file("cortex.db")
        let before = try await IdentityCLITests.run(["traffic", "show"], database: database)
        #expect(before.status == 0 && before.stdout.contains("configured (never changed)"))
        let set = try await IdentityCLITests.run(["traffic", "set", "--ab-weight-b", "0.25"], database: database)
        #expect(set.status == 0 && set.stdout.contains("stored version 1"), "\(set.stdout) \(set.stderr)")
        let refused = try await IdentityCLITests.run(["traffic", "set", "--ab-weight-a", "0", "--ab-weight-b", "0"], database: database)
        #expect(refused.status == 1 && refused.stderr.contains("ab_weight_a"))
        let shown = try await IdentityCLITests.run(["traffic", "show"], database: database)
        #expect(shown.stdout.contains("version 1") && shown.stdout.contains(#""ab_weight_b":0.25"#))
        let history = try await IdentityCLITests.run(["traffic", "history"], database: database)
        #expect(history.stdout.contains("\tcli\t"), "\(history.status as Any) \(history.stdout) \(history.stderr)")
        let switches = try await IdentityCLITests.run(["traffic", "set", "--shadow", "on", "--canary", "on"], database: database)
        #expect(switches.status == 0 && switches.stdout.contains(#""shadow_enabled":true,"canary_enabled":true,"canary_step":0"#))
        #expect(try await IdentityCLITests.run(["traffic", "set", "--shadow", "maybe"], database: database).status != 0)
        // A server on that database serves the stored switches.
        let server = try await TestServer.make(models: Repository.imageModels) { $0.database = .sqlite(path: database) }
        let settings = server.dependencies.traffic.settings
        #expect(settings.weightB == 0.25 && settings.shadowEnabled && settings.canaryEnabled)
        try await server.test { _ in }
    }

    @Test("POST /admin/warmup runs each variant and answers with the timings; a variant not loaded is reported, not run")
    func warmup() async throws {
        let onlyA = [ModelSource(name: "vA", path: Repository.path("models/vA.onnx"))]
        let server = try await TestServer.make(models: onlyA) { $0.auth.adminToken = AdminAPITests.adminToken }
        try await server.test { client in
            #expect(try await client.post("/admin/warmup", json: "", headers: [:]).status == .unauthorized)
            let warmed = try await client.post("/admin/warmup", json: #"{"runs":4}"#, headers: AdminAPITests.admin)
            #expect(warmed.status == .ok)
            let variants = try #require(warmed.body.jsonObject["variants"] as? [[String: Any]])
            let a = try #require(variants.first { $0["name"] as? String == "vA" })
            #expect(a["state"] as? String == "ready" && a["runs"] as? Int == 4)
            #expect((a["first_ms"] as? Double ?? -1) >= 0 && (a["mean_ms"] as? Double ?? -1) >= 0)
            let b = try #require(variants.first { $0["name"] as? String == "vB" })
            #expect(b["state"] as? String == "not configured" && b["runs"] == nil && (b["error"] as? String)?.isEmpty == false)
            for (body, field) in [(#"{"runs":0}"#, "runs"), (#"{"runs":2.5}"#, "runs"), (#"{"count":1}"#, "count")] {
                let refused = try await client.post("/admin/warmup", json: body, headers: AdminAPITests.admin)
                #expect(refused.status == .unprocessableContent && refused.body.jsonObject["field"] as? String == field, "\(body)")
            }
        }
        #expect(server.logs.events(named: "MODEL_WARMED").contains { $0.metadata["model"] == "vA" && $0.metadata["runs"] == "4" })
    }

    @Test("POST /admin/promote under concurrent load: vB's file serves as vA, no request fails, and the old vA is freed")
    func promote() async throws {
        let server = try await TestServer.make(models: Repository.imageModels) { $0.auth.adminToken = AdminAPITests.adminToken }
        let registry = server.dependencies.registry
        let candidatePath = try #require(registry.entry(named: "vB")?.source.path)
        // vA batches (its manifest's `batching:`): its batcher, a class, lives exactly as long as the model.
        weak var previous: DynamicBatcher?
        previous = (try registry.model(named: "vA") as? BatchedModel)?.batcher
        #expect(previous != nil)
        let body = ImageTests.request(try ImageTests.base64("digit3_0.png"), size: 8, extra: #","model":"vA""#)
        try await server.test { client in
            let statuses = try await Self.underLoad(client, body: body) {
                let promoted = try await client.post("/admin/promote", json: "", headers: AdminAPITests.admin)
                #expect(promoted.body.jsonObject["va_path"] as? String == candidatePath, "\(promoted.body.text)")
                return [Int(promoted.status.code)]
            }
            #expect(
                statuses.count == 161 && statuses.allSatisfy { $0 == 200 }, "\(Dictionary(grouping: statuses) { $0 }.mapValues(\.count))")
            #expect(registry.entry(named: "vA")?.source.path == candidatePath)
            let after = try await client.post("/v1/infer", json: body)
            #expect(after.status == .ok && after.body.jsonObject["model"] as? String == "vA")
        }
        #expect(previous == nil, "the old vA is freed once no request holds it")
        #expect(server.logs.events(named: "MODEL_PROMOTED").first?.metadata["to"] == candidatePath)
    }

    @Test("POST /admin/promote without a ready vB is a 409 that says why; vA keeps serving")
    func promoteWithoutCandidate() async throws {
        let onlyA = [ModelSource(name: "vA", path: Repository.path("models/vA.onnx"))]
        let server = try await TestServer.make(models: onlyA) { $0.auth.adminToken = AdminAPITests.adminToken }
        try await server.test { client in
            let refused = try await client.post("/admin/promote", json: "", headers: AdminAPITests.admin)
            #expect(refused.status == .conflict && refused.body.jsonObject["code"] as? String == "promote_not_possible")
            #expect(try await client.post("/v1/infer", json: try Self.digit()).status == .ok)
        }
    }
}
