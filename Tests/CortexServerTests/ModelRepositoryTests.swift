import CortexCore
import CortexRuntime
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

@testable import CortexServer

/// The Open Inference Protocol's model repository extension on the bundled `models/` directory:
/// index, load and unload without a restart, under load.
@Suite("Model repository (POST /v2/repository/...)")
struct ModelRepositoryTests {
    static func server(models: [ModelSource], configure: @escaping (inout CortexConfiguration) -> Void = { _ in }) async throws
        -> TestServer
    {
        try await TestServer.make(models: models) { configuration in
            configuration.auth.adminToken = AdminAPITests.adminToken
            configuration.modelRepository = Repository.path("models")
            configure(&configuration)
        }
    }

    static let onlyA = [ModelSource(name: "vA", path: Repository.path("models/vA.onnx"))]

    static func digit(_ model: String) throws -> String {
        ImageTests.request(try ImageTests.base64("digit3_0.png"), size: 8, extra: #","model":"\#(model)""#)
    }

    @Test("admin only; the index lists what is loaded and what the repository holds; bad names and absent models refused")
    func index() async throws {
        let server = try await Self.server(models: Self.onlyA)
        try await server.test { client in
            #expect(try await client.post("/v2/repository/index", json: "").status == .unauthorized)
            let wrong: HTTPFields = [.authorization: "Bearer admin-token-0123456789abcdeX"]
            #expect(try await client.post("/v2/repository/models/vB/load", json: "", headers: wrong).status == .unauthorized)
            let index = try await client.post("/v2/repository/index", json: "", headers: AdminAPITests.admin)
            #expect(index.status == .ok)
            let entries = try #require(try JSONSerialization.jsonObject(with: Data(index.body.readableBytesView)) as? [[String: Any]])
            let states = Dictionary(uniqueKeysWithValues: entries.map { ($0["name"] as? String ?? "", $0["state"] as? String ?? "") })
            // digits/ holds images, not a model: not listed.
            #expect(states == ["vA": "READY", "vB": "UNAVAILABLE", "lead-scoring": "UNAVAILABLE"], "\(entries)")
            let ready = try await client.post("/v2/repository/index", json: #"{"ready":true}"#, headers: AdminAPITests.admin)
            #expect(ready.body.text.contains(#""name":"vA""#) && !ready.body.text.contains("vB"))
            #expect(
                try await client.post("/v2/repository/index", json: #"{"ready":1}"#, headers: AdminAPITests.admin).status
                    == .unprocessableContent)
            for (name, status) in [("nothing-here", HTTPResponse.Status.notFound), ("..", .unprocessableContent), ("digits", .notFound)] {
                let refused = try await client.post("/v2/repository/models/\(name)/load", json: "", headers: AdminAPITests.admin)
                #expect(refused.status == status, "\(name): \(refused.body.text)")
            }
            #expect(try await client.post("/v2/repository/models/vB/unload", json: "", headers: AdminAPITests.admin).status == .notFound)
            #expect(try await client.get("/v2").body.text.contains("model_repository"))
        }
    }

    @Test("load under concurrent load: a new model, and vA reloaded while it serves; no request fails and the old vA is freed")
    func loadUnderLoad() async throws {
        let server = try await Self.server(models: Self.onlyA)
        let registry = server.dependencies.registry
        weak var previous: AnyObject?
        previous = try registry.model(named: "vA").lifetime
        #expect(previous != nil)
        let body = try Self.digit("vA")
        try await server.test { client in
            #expect(try await client.post("/v1/infer", json: try Self.digit("vB")).status == .notFound, "not loaded yet")
            let statuses = try await TrafficSplitTests.underLoad(client, body: body) {
                var seen: [Int] = []
                for name in ["vB", "vA", "lead-scoring"] {
                    let loaded = try await client.post("/v2/repository/models/\(name)/load", json: "", headers: AdminAPITests.admin)
                    #expect(loaded.body.text == "{}", "\(name): \(loaded.body.text)")
                    seen.append(Int(loaded.status.code))
                }
                return seen
            }
            #expect(
                statuses.count == 163 && statuses.allSatisfy { $0 == 200 }, "\(Dictionary(grouping: statuses) { $0 }.mapValues(\.count))")
            #expect(try await client.post("/v1/infer", json: try Self.digit("vB")).status == .ok)
            let score = #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0]}]}"#
            #expect(try await client.post("/v2/models/lead-scoring/infer", json: score).status == .ok)
        }
        #expect(previous == nil, "the old vA's batcher and session are freed once its last request let go")
        #expect(server.logs.events(named: "MODEL_LOADED").map { $0.metadata["model"] } == ["vB", "vA", "lead-scoring"])
    }

    @Test("unload drains: the request running on the model finishes 200 before the answer, which comes once its memory is freed")
    func unloadDrains() async throws {
        let server = try await Self.server(models: Repository.imageModels)
        let registry = server.dependencies.registry
        // The test holds the gate only: the model is held by the registry and the request running on it.
        let gate = ShadowCanaryTests.Gate()
        weak var lifetime: AnyObject?
        lifetime = try registry.model(named: "vB").lifetime
        registry.register(
            ShadowCanaryTests.WrappedModel(try registry.model(named: "vB"), gate: gate), source: ModelSource(name: "vB", path: "gated"))
        #expect(lifetime != nil)
        try await server.test { client in
            let body = try Self.digit("vB")
            async let running = client.post("/v1/infer", json: body)
            #expect(try await ShadowCanaryTests.eventually { gate.runs.load(ordering: .relaxed) == 1 })
            let unloaded = Atomic<Bool>(false)
            async let unload: TestResponse = {
                let response = try await client.post("/v2/repository/models/vB/unload", json: "", headers: AdminAPITests.admin)
                unloaded.store(true, ordering: .relaxed)
                return response
            }()
            // New requests no longer find vB, while the one running still holds it.
            #expect(try await ShadowCanaryTests.eventually { registry.entry(named: "vB") == nil })
            #expect(try await client.post("/v1/infer", json: body).status == .notFound)
            let early = unloaded.load(ordering: .relaxed)
            #expect(!early, "the unload waits for the running request")
            gate.open()
            #expect(try await running.status == .ok)
            let answer = try await unload
            #expect(answer.status == .ok && answer.body.text == "{}")
        }
        #expect(lifetime == nil)
        #expect(server.logs.events(named: "MODEL_DRAINED").first?.metadata["drained"] == "true")
    }

    @Test("a variant the split sends requests to cannot be unloaded (409); at weight 0 it can")
    func variantInUse() async throws {
        let server = try await Self.server(models: Repository.imageModels) {
            $0.traffic.weightA = 0; $0.traffic.weightB = 1
        }
        try await server.test { client in
            let refused = try await client.post("/v2/repository/models/vB/unload", json: "", headers: AdminAPITests.admin)
            #expect(refused.status == .conflict && refused.body.jsonObject["code"] as? String == "model_in_use")
            #expect(try await client.post("/v1/infer", json: try TrafficSplitTests.digit()).headers[.xModelVariant] == "vB")
            _ = try await client.post("/admin/config", json: #"{"ab_weight_a":1,"ab_weight_b":0}"#, headers: AdminAPITests.admin)
            #expect(try await client.post("/v2/repository/models/vB/unload", json: "", headers: AdminAPITests.admin).status == .ok)
        }
    }
}
