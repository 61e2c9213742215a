import CortexRuntime
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("Prometheus metrics")
struct MetricsTests {
    /// The value of one sample line, e.g. `http_requests_total{...} 3`.
    static func value(of sample: String, in text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(sample + " ") {
            return Double(line.dropFirst(sample.count + 1))
        }
        return nil
    }

    @Test("requests, outcomes, latencies and batch sizes are recorded under the names the replaced services used")
    func recorded() async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            let good =
                #"{"inputs":[{"name":"features","shape":[3,10],"datatype":"FP32","data":[[1,2,3,4,5,6,7,8,9,0],[1,2,3,4,5,6,7,8,9,0],[1,2,3,4,5,6,7,8,9,0]]}]}"#
            for _ in 0..<2 {
                #expect(try await client.post("/v2/models/lead-scoring/infer", json: good).status == .ok)
            }
            let bad = #"{"inputs":[{"name":"features","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#
            #expect(try await client.post("/v2/models/lead-scoring/infer", json: bad).status == .badRequest)
            _ = try await client.get("/ready")
            let text = try await client.get("/metrics").body.text

            #expect(Self.value(of: #"http_requests_total{method="POST",route="/v2/models/{model}/infer",status="200"}"#, in: text) == 2)
            #expect(Self.value(of: #"http_requests_total{method="POST",route="/v2/models/{model}/infer",status="400"}"#, in: text) == 1)
            #expect(
                Self.value(
                    of: #"http_request_duration_seconds_count{method="POST",route="/v2/models/{model}/infer",status="200"}"#, in: text)
                    == 2
            )
            #expect(Self.value(of: #"inference_outcome_total{model="lead-scoring",outcome="success"}"#, in: text) == 2)
            #expect(Self.value(of: #"inference_outcome_total{model="lead-scoring",outcome="invalid_input"}"#, in: text) == 1)
            #expect(Self.value(of: #"inference_latency_seconds_count{model="lead-scoring"}"#, in: text) == 2)
            #expect(Self.value(of: #"model_prediction_latency_count{model="lead-scoring"}"#, in: text) == 2)
            #expect(Self.value(of: #"model_prediction_errors{model="lead-scoring",provider="local"}"#, in: text) == 0)
            #expect(Self.value(of: #"model_batch_size_sum{model="lead-scoring"}"#, in: text) == 6)
            #expect(Self.value(of: #"model_batch_size_bucket{model="lead-scoring",le="2.0"}"#, in: text) == 0)
            #expect(Self.value(of: #"model_batch_size_bucket{model="lead-scoring",le="4.0"}"#, in: text) == 2)
            #expect(Self.value(of: #"status_ready{service="backend"}"#, in: text) == 1)
            #expect(Self.value(of: #"model_ready{model="lead-scoring"}"#, in: text) == 1)
            #expect(Self.value(of: #"cortex_build_info{version="0.1.0"}"#, in: text) == 1)
            #expect(text.contains("# TYPE http_request_duration_seconds histogram"))
            #expect(text.contains("# TYPE inference_latency_seconds histogram"))
            // Route templates, never raw paths, so label sets stay bounded.
            #expect(!text.contains(#"route="/v2/models/lead-scoring/infer""#))
        }
    }

    @Test("every refused request of a model counts as invalid_input, whichever route and step refused it; nothing else is counted")
    func everyRejectionCounted() async throws {
        let server = try await TestServer.make(models: [ModelSource(path: Repository.leadScoring)] + Repository.imageModels)
        try await server.test { client in
            let refused: [(String, String)] = [
                // The scoring API: bad JSON (400), an unknown feature and a wrong type (422), an empty batch (422).
                ("/api/v1/score", "{not json"),
                ("/api/v1/score", #"{"features":{"no_such_feature":1}}"#),
                ("/api/v1/score", #"{"features":{"pages_viewed":"twelve"}}"#),
                ("/api/v1/score", #"{"leads":[]}"#),
                // The Open Inference Protocol: a request that does not parse, a tensor the signature refuses.
                ("/v2/models/lead-scoring/infer", #"{"inputs":"nope"}"#),
                ("/v2/models/lead-scoring/infer", #"{"inputs":[{"name":"features","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#),
            ]
            for (path, body) in refused {
                let status = try await client.post(path, json: body).status.code
                #expect((400..<500).contains(status), "\(path) \(body): \(status)")
            }
            // The image route: not an image (400 invalid_image), a bad img_size (422).
            for body in [#"{"image_b64":"aGVsbG8=","model":"vB"}"#, #"{"image_b64":"aGVsbG8=","model":"vB","img_size":0}"#] {
                #expect((400..<500).contains(try await client.post("/v1/infer", json: body).status.code))
            }
            let text = try await client.get("/metrics").body.text
            #expect(Self.value(of: #"inference_outcome_total{model="lead-scoring",outcome="invalid_input"}"#, in: text) == 6)
            #expect(Self.value(of: #"inference_outcome_total{model="vB",outcome="invalid_input"}"#, in: text) == 2)
            #expect(Self.value(of: #"inference_outcome_total{model="lead-scoring",outcome="success"}"#, in: text) == 0)
            #expect(Self.value(of: #"model_prediction_latency_count{model="lead-scoring"}"#, in: text) == 0, "nothing ran")
        }
    }

    @Test("status_ready follows readiness")
    func statusReady() async throws {
        let server = try await TestServer.make()
        let drain = server.dependencies.drain
        try await server.test { client in
            _ = try await client.get("/ready")
            drain.begin()
            _ = try await client.get("/ready")
            let text = try await client.get("/metrics").body.text
            #expect(Self.value(of: #"status_ready{service="backend"}"#, in: text) == 0)
        }
    }
}
