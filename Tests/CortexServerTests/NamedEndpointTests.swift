import CortexCore
import CortexRuntime
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import CortexServer

/// Named endpoints (`traffic.endpoints`): an Open Inference Protocol name whose requests go to one
/// of two models by weight, with the switches of `/v1/infer` (sticky sessions, shadow, the admin
/// API, promotion); and promotions that reach every replica.
@Suite("Named endpoints and shared promotion")
struct NamedEndpointTests {
    /// The lead-scoring model twice, as two versions of a scorer.
    static var scorers: [ModelSource] {
        [
            ModelSource(name: "scorer-a", version: "1", path: Repository.leadScoring),
            ModelSource(name: "scorer-b", version: "2", path: Repository.leadScoring),
        ]
    }

    /// The `scorer` endpoint over `scorer-a` and `scorer-b` at these weights.
    static func endpoint(_ a: Double, _ b: Double, shadow: Bool = false) -> CortexConfiguration.Traffic {
        var traffic = CortexConfiguration.Traffic()
        traffic.endpoint = "scorer"
        (traffic.variantA, traffic.variantB) = ("scorer-a", "scorer-b")
        (traffic.weightA, traffic.weightB, traffic.shadowEnabled) = (a, b, shadow)
        return traffic
    }

    static let body = #"{"inputs":[{"name":"features","shape":[2,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0]}]}"#

    @Test("traffic.endpoints in YAML: each entry on top of the traffic section; bad entries stop start-up naming the field")
    func yaml() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        func load(_ endpoints: String) throws -> CortexConfiguration {
            let path = directory.file("cortex.yaml")
            let models = Self.scorers.map { "  - {name: \($0.name), version: \"\($0.version ?? "")\", path: \($0.path)}" }
            let text = "models:\n" + models.joined(separator: "\n") + "\ntraffic:\n  sticky_cookie: ab\n  endpoints:\n" + endpoints
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return try CortexConfiguration.load(file: path, environment: [:])
        }
        /// The key of the error loading `endpoints` stops at, `nil` when it loads.
        func failure(_ endpoints: String) -> String? {
            do {
                _ = try load(endpoints)
                return nil
            } catch {
                return (error as? ConfigurationError)?.key ?? "\(error)"
            }
        }
        let loaded = try load("    - {name: scorer, variant_a: scorer-a, variant_b: scorer-b, ab_weight_b: 0.25}\n")
        let scorer = try #require(loaded.trafficEndpoints.first)
        #expect(scorer.endpoint == "scorer" && scorer.variantA == "scorer-a" && scorer.variantB == "scorer-b")
        #expect(scorer.weightA == 1 && scorer.weightB == 0.25 && scorer.stickyCookie == "ab", "inherits the traffic section")
        #expect(scorer.split?.variants.map(\.model) == ["scorer-a", "scorer-b"])
        #expect(loaded.allTraffic.map(\.endpoint) == ["/v1/infer", "scorer"])

        for (entry, key) in [
            ("{name: scorer, variant_a: scorer-a, variant_b: nowhere}", "traffic.endpoints[0].variant_b"),
            ("{name: scorer, variant_a: scorer-a, variant_b: scorer-a}", "traffic.endpoints[0].variant_b"),
            ("{name: scorer-a, variant_a: scorer-a, variant_b: scorer-b}", "traffic.endpoints[0].name"),
            ("{variant_a: scorer-a, variant_b: scorer-b}", "traffic.endpoints[0].name"),
            ("{name: scorer, variant_a: scorer-a, variant_b: scorer-b, ab_weight_a: 0}", "traffic.endpoints[0].ab_weight_a"),
            ("{name: scorer, variant_a: scorer-a, variant_b: scorer-b, ab_weight_b: -1}", "traffic.endpoints[0].ab_weight_b"),
            ("{name: scorer, variant_a: scorer-a, variant_b: scorer-b, weight: 1}", "traffic.endpoints[0].weight"),
        ] {
            #expect(failure("    - \(entry)\n") == key, "\(entry)")
        }
        let twice = "    - {name: scorer, variant_a: scorer-a, variant_b: scorer-b}\n"
        #expect(failure(twice + twice) == "traffic.endpoints[1].name")
    }

    @Test("/v2/models/scorer/infer goes to either variant by weight, sticky by X-Session-ID; its metadata is its primary's")
    func split() async throws {
        let server = try await TestServer.make(models: Self.scorers) { configuration in
            configuration.auth.adminToken = AdminAPITests.adminToken
            configuration.trafficEndpoints = [Self.endpoint(1, 1)]
        }
        let expected = try #require(TrafficSplit([.init(model: "scorer-a", weight: 1), .init(model: "scorer-b", weight: 1)]))
        try await server.test { client in
            var seen: [String: Int] = [:]
            for index in 0..<40 {
                let session = "session-\(index % 10)"
                let answer = try await client.post("/v2/models/scorer/infer", json: Self.body, headers: [.xSessionID: session])
                #expect(answer.status == .ok, "\(answer.body.text)")
                let variant = try #require(answer.headers[.xModelVariant])
                #expect(variant == expected.variant(for: session), "the same session, the same variant, as on every replica")
                #expect(answer.body.jsonObject["model_name"] as? String == variant)
                seen[variant, default: 0] += 1
            }
            #expect(Set(seen.keys) == ["scorer-a", "scorer-b"], "\(seen)")
            let metrics = try await client.get("/metrics").body.text
            let counted = ["scorer-a", "scorer-b"].map {
                MetricsTests.value(of: #"traffic_requests_total{endpoint="scorer",variant="\#($0)"}"#, in: metrics) ?? 0
            }
            #expect(counted == [Double(seen["scorer-a"] ?? 0), Double(seen["scorer-b"] ?? 0)])
            #expect(
                MetricsTests.value(of: #"inference_outcome_total{model="scorer-b",outcome="success",variant="scorer-b"}"#, in: metrics)
                    != nil)

            let metadata = try await client.get("/v2/models/scorer")
            #expect(metadata.status == .ok && metadata.body.jsonObject["name"] as? String == "scorer-a")
            #expect(try await client.get("/v2/models/scorer/ready").status == .ok)
            // A version names a model, past the split.
            let pinned = try await client.post("/v2/models/scorer-b/versions/2/infer", json: Self.body)
            #expect(pinned.status == .ok && pinned.headers[.xModelVariant] == nil)

            // The admin API acts on the endpoint named by ?endpoint=.
            let config = try await client.get("/admin/config?endpoint=scorer", headers: AdminAPITests.admin).body.jsonObject
            #expect(config["endpoint"] as? String == "scorer" && config["endpoints"] as? [String] == ["/v1/infer", "scorer"])
            let variants = try #require(config["variants"] as? [[String: Any]])
            #expect(
                variants.map { $0["name"] as? String } == ["scorer-a", "scorer-b"]
                    && variants.map { $0["version"] as? String } == ["1", "2"])
            let changed = try await client.post(
                "/admin/config?endpoint=scorer", json: #"{"ab_weight_a":0,"ab_weight_b":1}"#, headers: AdminAPITests.admin)
            #expect(changed.status == .ok, "\(changed.body.text)")
            for index in 0..<10 {
                let answer = try await client.post("/v2/models/scorer/infer", json: Self.body, headers: [.xSessionID: "session-\(index)"])
                #expect(answer.headers[.xModelVariant] == "scorer-b")
            }
            let defaultSplit = try await client.get("/admin/config", headers: AdminAPITests.admin).body.jsonObject
            #expect(defaultSplit["endpoint"] as? String == "/v1/infer" && defaultSplit["ab_weight_b"] as? Double == 0, "untouched")
            let unknown = try await client.get("/admin/config?endpoint=nowhere", headers: AdminAPITests.admin)
            #expect(unknown.status == .notFound && unknown.body.jsonObject["code"] as? String == "endpoint_not_found")

            let page = try await client.get("/status").body.jsonObject
            let status = try #require(page["traffic_endpoints"] as? [[String: Any]])
            #expect(status.first?["endpoint"] as? String == "scorer" && status.first?["ab_weight_b"] as? Double == 1)
            // Each model says where it serves a share, with its version and readiness.
            let models = try #require(page["models"] as? [[String: Any]])
            let b = try #require(models.first { $0["name"] as? String == "scorer-b" })
            let shares = try #require(b["variants"] as? [[String: Any]])
            #expect(b["version"] as? String == "2" && b["ready"] as? Bool == true)
            #expect(shares.count == 1 && shares.first?["endpoint"] as? String == "scorer" && shares.first?["weight"] as? Double == 1)
            #expect((page["build"] as? [String: Any])?["version"] as? String == CortexVersion.current)
            let unload = try await client.post("/v2/repository/models/scorer-b/unload", json: "", headers: AdminAPITests.admin)
            #expect(unload.status == .conflict && unload.body.jsonObject["code"] as? String == "model_in_use")
            #expect(try await server.dependencies.store.trafficSettings(endpoint: "scorer")?.version == 1, "stored by endpoint")
        }
        let changes = server.logs.events(named: "TRAFFIC_CONFIG_CHANGED")
        #expect(
            changes.map { $0.metadata["endpoint"] } == ["scorer"]
                && changes.first?.metadata["after"]?.hasPrefix("scorer-a=0.0 scorer-b=1.0") == true)
    }

    @Test("shadow on a named endpoint: every request also runs on the other variant, compared, never billed")
    func shadow() async throws {
        let server = try await TestServer.make(models: Self.scorers) { configuration in
            configuration.trafficEndpoints = [Self.endpoint(1, 0, shadow: true)]
        }
        try await server.test { client in
            for _ in 0..<5 {
                let answer = try await client.post("/v2/models/scorer/infer", json: Self.body)
                #expect(answer.status == .ok && answer.headers[.xModelVariant] == "scorer-a")
            }
            let compared = #"shadow_requests_total{endpoint="scorer",shadow="scorer-b",outcome="compared"}"#
            #expect(try await ShadowCanaryTests.eventually { try await ShadowCanaryTests.metric(compared, client) == 5 })
            // The same file on both sides: every row's difference is 0 (2 rows a request).
            let metrics = try await client.get("/metrics").body.text
            let sum = metrics.split(separator: "\n").first {
                $0.hasPrefix("shadow_absolute_difference_sum") && $0.contains(#"endpoint="scorer""#)
            }
            let count = metrics.split(separator: "\n").first {
                $0.hasPrefix("shadow_absolute_difference_count") && $0.contains(#"endpoint="scorer""#)
            }
            #expect(sum.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } == 0, "\(sum ?? "none")")
            #expect(count.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } == 10, "\(count ?? "none")")
        }
    }

    @Test("several versions of one model at once: each by /versions/{v}, the last listed without one; unload takes them all")
    func versions() async throws {
        let versions = ["1", "2"].map { ModelSource(name: "scorer", version: $0, path: Repository.leadScoring) }
        let server = try await TestServer.make(models: versions) { $0.auth.adminToken = AdminAPITests.adminToken }
        try await server.test { client in
            let metadata = try await client.get("/v2/models/scorer").body.jsonObject
            #expect(metadata["versions"] as? [String] == ["1", "2"])
            for (path, version) in [
                ("/v2/models/scorer/versions/1", "1"), ("/v2/models/scorer/versions/2", "2"), ("/v2/models/scorer", "2"),
            ] {
                let answer = try await client.post(path + "/infer", json: Self.body)
                #expect(
                    answer.status == .ok && answer.body.jsonObject["model_version"] as? String == version, "\(path): \(answer.body.text)")
                #expect(try await client.get(path + "/ready").status == .ok)
            }
            #expect(try await client.post("/v2/models/scorer/versions/3/infer", json: Self.body).status == .notFound)
            let index = try await client.post("/v2/repository/index", json: "", headers: AdminAPITests.admin).body.text
            let listed = try JSONSerialization.jsonObject(with: Data(index.utf8)) as? [[String: Any]] ?? []
            #expect(listed.filter { $0["name"] as? String == "scorer" }.compactMap { $0["version"] as? String } == ["1", "2"], "\(index)")

            let unloaded = try await client.post("/v2/repository/models/scorer/unload", json: "", headers: AdminAPITests.admin)
            #expect(unloaded.status == .ok && unloaded.body.text == "{}", "drained: \(unloaded.body.text)")
            for path in ["/v2/models/scorer/versions/1", "/v2/models/scorer/versions/2", "/v2/models/scorer"] {
                #expect(try await client.post(path + "/infer", json: Self.body).status == .notFound, "\(path)")
            }
        }
        #expect(server.logs.events(named: "MODEL_UNLOADED").compactMap { $0.metadata["version"] } == ["1", "2"])
    }

    @Test("a promotion on one replica reaches the other through the database; a restart does not promote again")
    func sharedPromotion() async throws {
        let first = try await TestServer.make(models: Repository.imageModels, database: .postgres) {
            $0.auth.adminToken = AdminAPITests.adminToken
        }
        let database = first.dependencies.configuration.database
        let configuredA = try #require(first.dependencies.registry.entry(named: "vA")?.source.path)
        let candidate = try #require(first.dependencies.registry.entry(named: "vB")?.source.path)
        try await first.test { client in
            let second = try await TestServer.make(models: Repository.imageModels) { $0.database = database }
            let promoted = try await client.post("/admin/promote", json: "", headers: AdminAPITests.admin)
            #expect(promoted.status == .ok && promoted.body.jsonObject["promotions"] as? Int == 1, "\(promoted.body.text)")
            #expect(first.dependencies.registry.entry(named: "vA")?.source.path == candidate)
            #expect(second.dependencies.registry.entry(named: "vA")?.source.path == configuredA, "not yet polled")
            await second.dependencies.trafficSyncs[0].poll()
            #expect(second.dependencies.registry.entry(named: "vA")?.source.path == candidate)
            #expect(second.logs.events(named: "MODEL_PROMOTED").first?.metadata["to"] == candidate)
            try await second.test { other in
                let answer = try await other.post("/v1/infer", json: try TrafficSplitTests.digit())
                #expect(answer.status == .ok)
            }
            // A restart serves the configured files: the count is known, nothing is promoted again.
            let third = try await TestServer.make(models: Repository.imageModels) { $0.database = database }
            #expect(third.dependencies.traffic.settings.promotions == 1)
            #expect(third.dependencies.registry.entry(named: "vA")?.source.path == configuredA)
            #expect(third.logs.events(named: "MODEL_PROMOTED").isEmpty)
            try await third.test { _ in }
        }
    }

    @Test(
        "a change on a replica that has not polled yet is stored on top of the stored version: it keeps the other's promotion, and runs it")
    func changeOnStaleReplica() async throws {
        let first = try await TestServer.make(models: Repository.imageModels, database: .postgres) {
            $0.auth.adminToken = AdminAPITests.adminToken
        }
        let database = first.dependencies.configuration.database
        let candidate = try #require(first.dependencies.registry.entry(named: "vB")?.source.path)
        try await first.test { client in
            let second = try await TestServer.make(models: Repository.imageModels) {
                $0.database = database
                $0.auth.adminToken = AdminAPITests.adminToken
            }
            #expect(try await client.post("/admin/promote", json: "", headers: AdminAPITests.admin).status == .ok)
            try await second.test { other in
                // The second replica has not polled: its own switches still say 0 promotions, version 0.
                #expect(second.dependencies.traffic.version == 0)
                let changed = try await other.post("/admin/config", json: #"{"ab_weight_b":0.5}"#, headers: AdminAPITests.admin)
                #expect(changed.status == .ok, "\(changed.body.text)")
                #expect(changed.body.jsonObject["version"] as? Int == 2 && changed.body.jsonObject["promotions"] as? Int == 1)
            }
            #expect(second.dependencies.registry.entry(named: "vA")?.source.path == candidate, "the promotion it had missed ran")
            let stored = try await first.dependencies.store.trafficSettings(endpoint: "/v1/infer")
            let settings = try TrafficControl.settings(stored: try #require(stored?.settings), on: CortexConfiguration.Traffic())
            #expect(stored?.version == 2 && settings.promotions == 1 && settings.weightB == 0.5)
        }
    }

    @Test("cortex traffic promote raises the stored count; a running server promotes at its next poll; --endpoint must be configured")
    func promoteCommand() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = directory.file("cortex.db")
        let server = try await TestServer.make(models: Repository.imageModels) { $0.database = .sqlite(path: database) }
        let candidate = try #require(server.dependencies.registry.entry(named: "vB")?.source.path)
        let promoted = try await IdentityCLITests.run(["traffic", "promote"], database: database)
        #expect(promoted.status == 0 && promoted.stdout.contains(#""promotions":1"#), "\(promoted.stdout) \(promoted.stderr)")
        await server.dependencies.trafficSyncs[0].poll()
        #expect(server.dependencies.registry.entry(named: "vA")?.source.path == candidate)
        let history = try await IdentityCLITests.run(["traffic", "history"], database: database)
        #expect(history.stdout.contains("\tcli\t") && history.stdout.contains(#""promotions":1"#))
        let unknown = try await IdentityCLITests.run(["traffic", "show", "--endpoint", "nowhere"], database: database)
        #expect(unknown.status != 0 && unknown.stderr.contains("nowhere"))
        try await server.test { _ in }
    }
}
