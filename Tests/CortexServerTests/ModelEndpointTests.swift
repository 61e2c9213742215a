import CortexCore
import CortexRuntime
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import CortexServer

/// `MODEL_ENDPOINT_PROVIDER=remote`: the scoring model's inference on another Open Inference
/// Protocol server (here a real Cortex process), with the local model answering when it fails.
@Suite("Remote model endpoint with local fallback (a real Cortex process as the remote)", .serialized)
struct ModelEndpointTests {
    static let remoteKey = "remote-key-0001"

    @Test(
        "scores go to the remote and match the local model's; the remote killed, the local model answers every request, and /status says so"
    )
    func remoteThenFallback() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (remote, port) = try await CortexProcess.serve(environment: ["API_KEYS": Self.remoteKey], directory: directory)
        defer { remote.terminate() }
        let server = try await TestServer.make { configuration in
            configuration.modelEndpoint.provider = .remote
            configuration.modelEndpoint.url = "http://127.0.0.1:\(port)"
            configuration.modelEndpoint.apiKey = Self.remoteKey
            // Generous: the remote must answer these even on a machine busy with other suites.
            configuration.modelEndpoint.timeoutMilliseconds = 15_000
        }
        let fixture = try LeadScoringFixture.load()
        let body = #"{"features":"# + ScoringTests.features(fixture, row: 3) + "}"
        @Sendable func remoteSuccesses() throws -> Double {
            let metrics = try RawHTTPConnection.request(port: port, path: "/metrics")?.body ?? ""
            return MetricsTests.value(of: #"inference_outcome_total{model="lead-scoring",outcome="success"}"#, in: metrics) ?? 0
        }
        try await server.test { client in
            for _ in 0..<3 {
                let answer = try await client.post("/api/v1/score", json: body)
                #expect(answer.status == .ok, "\(answer.body.text)")
                let score = try #require(answer.body.jsonObject["score"] as? Double)
                #expect(abs(Float(score) - fixture.predictions[3]) <= 1e-6, "the remote's answer is the model's")
            }
            let served = try remoteSuccesses()
            #expect(served == 3, "the remote served them")
            let status = try #require(try await client.get("/status").body.jsonObject["model"] as? [String: Any])
            #expect(status["endpoint_provider"] as? String == "remote" && status["fallback_active"] as? Bool == false)
            #expect(status["circuit"] as? String == "closed" && status["url"] as? String == "http://127.0.0.1:\(port)")

            remote.terminate()
            for _ in 0..<7 {
                let answer = try await client.post("/api/v1/score", json: body)
                #expect(answer.status == .ok, "the local model answers: \(answer.body.text)")
                let score = try #require(answer.body.jsonObject["score"] as? Double)
                #expect(abs(Float(score) - fixture.predictions[3]) <= 1e-6)
            }
            let after = try #require(try await client.get("/status").body.jsonObject["model"] as? [String: Any])
            #expect(after["fallback_active"] as? Bool == true && after["circuit"] as? String == "open", "\(after)")
            let metrics = try await client.get("/metrics").body.text
            #expect(MetricsTests.value(of: #"model_prediction_errors{model="lead-scoring",provider="remote"}"#, in: metrics) == 7)
        }
        let fallbacks = server.logs.events(named: "MODEL_ENDPOINT_FALLBACK")
        #expect(fallbacks.count == 7)
        #expect(
            fallbacks.prefix(5).allSatisfy { $0.metadata["reason"]?.contains("did not answer") == true }, "\(fallbacks.map(\.metadata))")
        #expect(fallbacks.suffix(2).allSatisfy { $0.metadata["reason"] == "circuit open" }, "five failures open the breaker")
        #expect(!server.logs.allText.contains(Self.remoteKey), "the key is never logged")
    }

    @Test("a remote that refuses or answers nonsense is a failure of the remote: the local model answers")
    func refusingRemote() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // A Cortex that requires a key it is not given: every call is a 401.
        let (remote, port) = try await CortexProcess.serve(
            environment: ["API_KEYS": Self.remoteKey, "DEMO_TENANT": "off"], directory: directory)
        defer { remote.terminate() }
        let server = try await TestServer.make { configuration in
            configuration.modelEndpoint.provider = .remote
            configuration.modelEndpoint.url = "http://127.0.0.1:\(port)"
        }
        try await server.test { client async throws in
            #expect(try await client.post("/api/v1/score", json: LedgerLoadTests.lead).status == .ok)
            // A bad request is still refused here, by the local signature, before any call.
            #expect(try await client.post("/api/v1/score", json: #"{"features":{"nope":1}}"#).status == .unprocessableContent)
        }
        #expect(server.logs.events(named: "MODEL_ENDPOINT_FALLBACK").first?.metadata["reason"]?.contains("answered 401") == true)
    }

    @Test("an answer's outputs are read against the signature: by name, shaped, numbers only")
    func answers() throws {
        let metadata = ModelMetadata(
            name: "m", version: "1", platform: "p", inputs: [],
            outputs: [TensorSpec(name: "predictions", datatype: .fp32, shape: TensorShape([-1]))])
        let good =
            #"{"model_name":"m","outputs":[{"name":"other","shape":[1],"datatype":"FP32","data":[9]},{"name":"predictions","shape":[2],"datatype":"FP32","data":[0.25,0.75]}]}"#
        let outputs = try InferenceProtocolWire.outputs(Array(good.utf8), for: metadata)
        #expect(outputs.count == 1 && outputs[0].data == .float([0.25, 0.75]) && outputs[0].shape.dimensions == [2])
        for bad in [
            "not json", #"{"outputs":[]}"#, #"{"outputs":[{"name":"predictions","shape":[3],"data":[1,2]}]}"#,
            #"{"outputs":[{"name":"predictions","shape":[1],"data":["x"]}]}"#,
        ] {
            #expect(throws: (any Error).self, "\(bad)") { try InferenceProtocolWire.outputs(Array(bad.utf8), for: metadata) }
        }
        let body = InferenceProtocolWire.requestBody([
            Tensor(name: "features", datatype: .fp32, shape: TensorShape([1, 2]), data: .float([1.5, .nan]))
        ])
        #expect(body == #"{"inputs":[{"name":"features","shape":[1,2],"datatype":"FP32","data":[1.5,null]}]}"#)
    }

    @Test(
        "MODEL_ENDPOINT_* settings: remote needs a URL; no local model stops start-up"
    )
    func settings() async throws {
        for (environment, key) in [
            (["MODEL_ENDPOINT_PROVIDER": "remote"], "MODEL_ENDPOINT_URL"),
            (["MODEL_ENDPOINT_PROVIDER": "cloud"], "MODEL_ENDPOINT_PROVIDER"),
            (["MODEL_ENDPOINT_PROVIDER": "remote", "MODEL_ENDPOINT_URL": "ftp://x"], "MODEL_ENDPOINT_URL"),
        ] {
            #expect(throws: ConfigurationError.self, "\(environment)") {
                try CortexConfiguration.load(file: nil, environment: environment)
            }
            do { _ = try CortexConfiguration.load(file: nil, environment: environment) } catch let error as ConfigurationError {
                #expect(error.key == key, "\(environment)")
            }
        }
        let loaded = try CortexConfiguration.load(
            file: nil,
            environment: [
                "MODEL_ENDPOINT_PROVIDER": "remote", "MODEL_ENDPOINT_URL": "http://triton:8000/", "MODEL_ENDPOINT_API_KEY": "secret-key-01",
            ])
        #expect(loaded.modelEndpoint.url == "http://triton:8000" && !loaded.summary.contains("secret-key-01"))
        await #expect(throws: ConfigurationError.self) {
            _ = try await TestServer.make(models: Repository.imageModels) { configuration in
                configuration.modelEndpoint.provider = .remote
                configuration.modelEndpoint.url = "http://127.0.0.1:1"
            }
        }
    }
}
