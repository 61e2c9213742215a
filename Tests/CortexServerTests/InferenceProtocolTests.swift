import CortexRuntime
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// xgboost's predictions on held-out rows (`scripts/train_models.py`).
struct LeadScoringFixture: Decodable {
    var feature_names: [String]
    var rows: [[Double?]]
    var predictions: [Float]

    static func load() throws -> LeadScoringFixture {
        let data = try Data(contentsOf: URL(fileURLWithPath: Repository.path("models/lead-scoring/expected.json")))
        return try JSONDecoder().decode(LeadScoringFixture.self, from: data)
    }

    /// Rows as JSON arrays, `null` for missing values.
    func json(rows range: Range<Int>) -> String {
        "["
            + rows[range].map { row in "[" + row.map { $0.map { String($0) } ?? "null" }.joined(separator: ",") + "]" }.joined(
                separator: ",")
            + "]"
    }
}

@Suite("Open Inference Protocol")
struct InferenceProtocolTests {
    @Test("server and model metadata")
    func metadata() async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            let root = try await client.get("/v2")
            #expect(root.body.jsonObject["name"] as? String == "cortex")
            let model = try await client.get("/v2/models/lead-scoring")
            #expect(model.status == .ok)
            let body = model.body.jsonObject
            #expect(body["versions"] as? [String] == ["1.0.0"])
            #expect(body["platform"] as? String == "xgboost_json")
            let inputs = body["inputs"] as? [[String: Any]] ?? []
            #expect(inputs.first?["name"] as? String == "features")
            #expect(inputs.first?["datatype"] as? String == "FP32")
            #expect(inputs.first?["shape"] as? [Int] == [-1, 10])
            let versioned = try await client.get("/v2/models/lead-scoring/versions/1.0.0")
            #expect(versioned.status == .ok)
            #expect(try await client.get("/v2/models/lead-scoring/versions/9").status == .notFound)
            #expect(try await client.get("/v2/models/lead-scoring/ready").status == .ok)
            #expect(try await client.get("/v2/models/lead-scoring/versions/1.0.0/ready").status == .ok)
            #expect(try await client.get("/v2/models/nope").status == .notFound)
        }
    }

    @Test("inference over HTTP matches xgboost's predictions to 1e-6, with id echoed")
    func parity() async throws {
        let fixture = try LeadScoringFixture.load()
        let server = try await TestServer.make()
        try await server.test { client in
            for start in stride(from: 0, to: 1000, by: 250) {
                let range = start..<(start + 250)
                let response = try await client.post(
                    "/v2/models/lead-scoring/versions/1.0.0/infer",
                    json: #"{"id":"batch-\#(start)","inputs":[{"name":"features","shape":[250,10],"datatype":"FP32","data":"#
                        + fixture.json(rows: range) + "}]}"
                )
                #expect(response.status == .ok)
                let body = response.body.jsonObject
                #expect(body["id"] as? String == "batch-\(start)")
                #expect(body["model_name"] as? String == "lead-scoring")
                #expect(body["model_version"] as? String == "1.0.0")
                let output = (body["outputs"] as? [[String: Any]])?.first ?? [:]
                #expect(output["name"] as? String == "predictions")
                #expect(output["shape"] as? [Int] == [250])
                let data = (output["data"] as? [Double] ?? []).map { Float($0) }
                #expect(data.count == 250)
                let worst = zip(data, fixture.predictions[range]).map { abs($0 - $1) }.max() ?? 1
                #expect(worst <= 1e-6)
            }
        }
    }

    @Test("flat data and requested outputs work; an unknown requested output is a 400")
    func flatDataAndOutputs() async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            let ok = try await client.post(
                "/v2/models/lead-scoring/infer",
                json:
                    #"{"inputs":[{"name":"features","shape":[2,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0]}],"outputs":[{"name":"predictions"}]}"#
            )
            #expect(ok.status == .ok)
            let outputs = ok.body.jsonObject["outputs"] as? [[String: Any]] ?? []
            #expect(outputs.count == 1)
            let data = outputs.first?["data"] as? [Double] ?? []
            #expect(data.count == 2 && data[0] == data[1])
            let bad = try await client.post(
                "/v2/models/lead-scoring/infer",
                json:
                    #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0]}],"outputs":[{"name":"logits"}]}"#
            )
            #expect(bad.status == .badRequest)
            #expect((bad.body.jsonObject["error"] as? String)?.contains("logits") == true)
        }
    }
}
