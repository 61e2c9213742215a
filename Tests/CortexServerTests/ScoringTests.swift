import CortexRuntime
import CortexServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("The lead-scoring API")
struct ScoringTests {
    /// The fixture's row as a named-feature object, with missing values left out.
    static func features(_ fixture: LeadScoringFixture, row: Int) -> String {
        let pairs = zip(fixture.feature_names, fixture.rows[row]).compactMap { name, value in
            value.map { "\"\(name)\":\($0)" }
        }
        return "{" + pairs.joined(separator: ",") + "}"
    }

    @Test("one lead scores as xgboost scores it, missing features included")
    func single() async throws {
        let fixture = try LeadScoringFixture.load()
        let row = try #require(fixture.rows.firstIndex { $0.contains { $0 == nil } })
        let server = try await TestServer.make()
        try await server.test { client in
            let response = try await client.post(
                "/api/v1/score",
                json: #"{"lead_id":"L-1","features":"# + Self.features(fixture, row: row) + "}"
            )
            #expect(response.status == .ok)
            let body = response.body.jsonObject
            #expect(body["lead_id"] as? String == "L-1")
            #expect(body["model"] as? String == "lead-scoring")
            #expect(body["model_version"] as? String == "1.0.0")
            #expect(body["request_id"] as? String == response.headers[.xRequestID])
            let score = try #require(body["score"] as? Double)
            #expect(abs(Float(score) - fixture.predictions[row]) <= 1e-6)
        }
    }

    @Test("a lead-scoring model behind a dynamic batcher still serves /api/v1/score, with the same scores")
    func batchedTreeModel() async throws {
        let fixture = try LeadScoringFixture.load()
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try directory.write(
            "lead-scoring/model.yaml", "version: \"1.0.0\"\nformat: xgboost_json\nfile: model.json\nbatching: {max_batch_size: 8}\n")
        try FileManager.default.copyItem(
            atPath: Repository.path("models/lead-scoring/model.json"), toPath: directory.file("lead-scoring/model.json"))
        let server = try await TestServer.make(models: [ModelSource(path: directory.file("lead-scoring"))])
        #expect(try server.dependencies.registry.model(named: "lead-scoring") is BatchedModel)
        try await server.test { client in
            let response = try await client.post("/api/v1/score", json: #"{"features":"# + Self.features(fixture, row: 0) + "}")
            #expect(response.status == .ok)
            let score = try #require(response.body.jsonObject["score"] as? Double)
            #expect(abs(Float(score) - fixture.predictions[0]) <= 1e-6)
        }
    }

    @Test("a batch returns one score per lead, in order")
    func batch() async throws {
        let fixture = try LeadScoringFixture.load()
        let server = try await TestServer.make()
        try await server.test { client in
            let leads = (0..<40).map { #"{"lead_id":"L-\#($0)","features":"# + Self.features(fixture, row: $0) + "}" }
            let response = try await client.post("/api/v1/score", json: #"{"leads":["# + leads.joined(separator: ",") + "]}")
            #expect(response.status == .ok)
            let body = response.body.jsonObject
            #expect(body["count"] as? Int == 40)
            let scores = body["scores"] as? [[String: Any]] ?? []
            #expect(scores.count == 40)
            for (index, entry) in scores.enumerated() {
                #expect(entry["lead_id"] as? String == "L-\(index)")
                #expect(abs(Float(entry["score"] as? Double ?? -1) - fixture.predictions[index]) <= 1e-6)
            }
            // The multi-tenant ops API's counters: each lead enriched, each in its score band,
            // the bands computed here from the scores answered; a refused body scores and counts nothing.
            #expect(try await client.post("/api/v1/score", json: #"{"leads":[{"features":{}}]"#).status == .badRequest)
            let metrics = try await client.get("/metrics").body.text
            #expect(MetricsTests.value(of: "lead_enrich_total", in: metrics) == 40)
            let answered = scores.compactMap { $0["score"] as? Double }
            for (band, range) in [("high", 0.7...1.0), ("medium", 0.3..<0.7), ("low", 0.0..<0.3)] as [(String, any RangeExpression<Double>)]
            {
                let expected = Double(answered.filter { range.contains($0) }.count)
                #expect((MetricsTests.value(of: #"lead_outcome_total{band="\#(band)"}"#, in: metrics) ?? 0) == expected, "\(band)")
            }
        }
    }

    @Test(
        "the sample bodies in docs/examples score",
        arguments: ["sample_request_1.json", "sample_request_2.json", "sample_request_batch.json"])
    func documentedSamples(file: String) async throws {
        let text = try String(contentsOfFile: Repository.path("docs/examples/\(file)"), encoding: .utf8)
        let server = try await TestServer.make()
        try await server.test { client in
            let response = try await client.post("/api/v1/score", json: text)
            #expect(response.status == .ok, "\(response.body.text)")
        }
    }

    @Test("model info names the model, its version and its features")
    func info() async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            let response = try await client.get("/api/v1/model/info")
            #expect(response.status == .ok)
            let body = response.body.jsonObject
            #expect(body["name"] as? String == "lead-scoring")
            #expect(body["version"] as? String == "1.0.0")
            #expect(body["objective"] as? String == "binary:logistic")
            #expect((body["features"] as? [String])?.count == 10)
            #expect(body["num_trees"] as? String == "80")
            #expect(body["num_features"] as? String == "10")
        }
    }
}
