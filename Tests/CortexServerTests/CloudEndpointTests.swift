import CortexCore
import CortexRuntime
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import CortexServer

/// `MODEL_ENDPOINT_PROVIDER=sagemaker` and `azure`: the scoring model's inference on a cloud
/// endpoint, against loopback stand-ins that speak each wire format (SageMaker's requests
/// verified by botocore's own Signature Version 4 signer), with the local model answering when
/// the endpoint fails.
@Suite("SageMaker and Azure ML endpoints (loopback fakes, signatures checked by botocore)", .serialized)
struct CloudEndpointTests {
    static let accessKey = "AKIDEXAMPLEKEY0001"
    static let secretKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    static let containerToken = "container-token-0001"
    static let azureKey = "azure-endpoint-key-0001"

    /// The fake endpoints (Tests/Python/fake_cloud_endpoints.py) on a loopback port.
    final class FakeCloud: Sendable {
        let server: PythonServer
        var url: String { server.url }

        init() async throws {
            server = try await PythonServer(
                "fake_cloud_endpoints.py",
                arguments: [
                    CloudEndpointTests.accessKey, CloudEndpointTests.secretKey, "us-east-1", CloudEndpointTests.containerToken,
                    CloudEndpointTests.azureKey,
                ])
        }

        /// What reached the fake, oldest first, and how often credentials were fetched.
        func requests() throws -> (requests: [[String: Any]], credentialFetches: Int) {
            let object = try server.get("/requests")
            return (object["requests"] as? [[String: Any]] ?? [], object["credential_fetches"] as? Int ?? -1)
        }

        /// Every model call answers `status` from now on (0: answer again).
        func fail(with status: Int) throws {
            _ = try RawHTTPConnection.request(port: server.port, method: "POST", path: "/mode", body: #"{"fail":\#(status)}"#)
        }
    }

    /// What the fakes answer for a row: the fraction of its features present.
    static func fakeScore(_ row: [Double?]) -> Double {
        (Double(row.count(where: { $0 != nil })) / Double(row.count) * 1e6).rounded() / 1e6
    }

    /// A server whose scoring model is the fake's SageMaker endpoint, credentials set by `credentials`.
    static func sageMaker(_ fake: FakeCloud, credentials: (inout CortexConfiguration.ModelEndpoint) -> Void) async throws -> TestServer {
        try await TestServer.make { configuration in
            configuration.modelEndpoint.provider = .sagemaker
            configuration.modelEndpoint.sageMakerEndpointName = "lead-scoring-endpoint"
            configuration.modelEndpoint.awsRegion = "us-east-1"
            configuration.modelEndpoint.awsEndpointURL = fake.url
            // Generous: the fake must answer even on a machine busy with other suites.
            configuration.modelEndpoint.timeoutMilliseconds = 15_000
            credentials(&configuration.modelEndpoint)
        }
    }

    /// Scores row `row` and checks the local model answered it (as xgboost scores the lead).
    static func scoredLocally(_ row: Int, client: some TestClientProtocol, fixture: LeadScoringFixture) async throws {
        let answer = try await client.post("/api/v1/score", json: #"{"features":"# + ScoringTests.features(fixture, row: row) + "}")
        let score = try #require(answer.body.jsonObject["score"] as? Double)
        #expect(abs(Float(score) - fixture.predictions[row]) <= 1e-6, "row \(row): the local model's answer")
    }

    /// Scores rows 0..<count one at a time and checks each answer is the fake's.
    static func scoreRows(_ count: Int, client: some TestClientProtocol, fixture: LeadScoringFixture) async throws {
        for row in 0..<count {
            let answer = try await client.post("/api/v1/score", json: #"{"features":"# + ScoringTests.features(fixture, row: row) + "}")
            #expect(answer.status == .ok, "\(answer.body.text)")
            let score = try #require(answer.body.jsonObject["score"] as? Double)
            #expect(abs(score - fakeScore(fixture.rows[row])) < 1e-9, "row \(row): the endpoint's answer, not the local model's")
        }
    }

    @Test(
        "SageMaker: InvokeEndpoint with rows as CSV, every request's SigV4 signature valid for botocore; a failing endpoint or a bad key falls back to the local model"
    )
    func sageMakerWithKeys() async throws {
        let fake = try await FakeCloud()
        let fixture = try LeadScoringFixture.load()
        let server = try await Self.sageMaker(fake) { endpoint in
            endpoint.awsAccessKeyID = Self.accessKey
            endpoint.awsSecretAccessKey = Self.secretKey
        }
        try await server.test { client in
            try await Self.scoreRows(4, client: client, fixture: fixture)
            let calls = try fake.requests().requests
            #expect(calls.count == 4)
            for (row, call) in calls.enumerated() {
                #expect(call["signature"] as? String == "valid", "\(call)")
                #expect(call["path"] as? String == "/endpoints/lead-scoring-endpoint/invocations")
                let headers = call["headers"] as? [String: String] ?? [:]
                #expect(headers["content-type"] == "text/csv" && headers["accept"] == "application/json")
                // The CSV row is the lead's features in the model's order, a missing one empty.
                let fields = (call["body"] as? String ?? "").trimmingCharacters(in: .newlines).split(
                    separator: ",", omittingEmptySubsequences: false)
                #expect(fields.count == fixture.feature_names.count, "\(call)")
                for (field, value) in zip(fields, fixture.rows[row]) {
                    if let value {
                        #expect(Double(field).map { abs($0 - value) <= 1e-6 * max(1, abs(value)) } == true, "\(field) for \(value)")
                    } else {
                        #expect(field.isEmpty)
                    }
                }
            }
            let status = try #require(try await client.get("/status").body.jsonObject["model"] as? [String: Any])
            #expect(status["endpoint_provider"] as? String == "sagemaker" && status["fallback_active"] as? Bool == false)
            #expect(status["url"] as? String == "\(fake.url)/endpoints/lead-scoring-endpoint", "\(status)")

            // The model container fails: the local model answers, as xgboost scores the lead.
            try fake.fail(with: 500)
            try await Self.scoredLocally(2, client: client, fixture: fixture)
            let after = try #require(try await client.get("/status").body.jsonObject["model"] as? [String: Any])
            #expect(after["fallback_active"] as? Bool == true)
            let metrics = try await client.get("/metrics").body.text
            #expect(MetricsTests.value(of: #"model_prediction_errors{model="lead-scoring",provider="sagemaker"}"#, in: metrics) == 1)
        }
        let fallback = server.logs.events(named: "MODEL_ENDPOINT_FALLBACK").first
        #expect(fallback?.metadata["provider"] == "sagemaker" && fallback?.metadata["reason"]?.contains("answered 500") == true)
        #expect(!server.logs.allText.contains(Self.secretKey), "the secret key is never logged")

        // A wrong secret: the fake (botocore) refuses the signature and the local model answers.
        let wrong = try await Self.sageMaker(fake) { endpoint in
            endpoint.awsAccessKeyID = Self.accessKey
            endpoint.awsSecretAccessKey = "not-the-secret-key-0001"
        }
        try fake.fail(with: 0)
        try await wrong.test { client in
            try await Self.scoredLocally(1, client: client, fixture: fixture)
        }
        #expect(try fake.requests().requests.last?["signature"] as? String == "signature mismatch")
        let refused = wrong.logs.events(named: "MODEL_ENDPOINT_FALLBACK").first?.metadata["reason"] ?? ""
        #expect(refused.contains("answered 403") && refused.contains("InvalidSignatureException"), "\(refused)")
    }

    @Test(
        "SageMaker with the container credentials endpoint (ECS, EKS Pod Identity): temporary keys fetched once with the token or its file, sent with their session token"
    )
    func sageMakerContainerCredentials() async throws {
        let fake = try await FakeCloud()
        let fixture = try LeadScoringFixture.load()
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tokenFile = directory.path + "/token"
        try (Self.containerToken + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)
        for useFile in [false, true] {
            let before = try fake.requests()
            let server = try await Self.sageMaker(fake) { endpoint in
                endpoint.awsContainerCredentialsFullURI = "\(fake.url)/credentials"
                if useFile {
                    endpoint.awsContainerAuthorizationTokenFile = tokenFile
                } else {
                    endpoint.awsContainerAuthorizationToken = Self.containerToken
                }
            }
            try await server.test { client in
                // Eight at once on a fresh server: one fetch serves them all.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<8 { group.addTask { try await Self.scoreRows(1, client: client, fixture: fixture) } }
                    try await group.waitForAll()
                }
                try await Self.scoreRows(3, client: client, fixture: fixture)
            }
            let after = try fake.requests()
            let calls = after.requests.dropFirst(before.requests.count)
            #expect(calls.count == 11 && calls.allSatisfy { $0["signature"] as? String == "valid" }, "\(calls)")
            #expect(
                calls.allSatisfy { ($0["headers"] as? [String: String])?["x-amz-security-token"] == "temporary-session-token-0001" })
            #expect(after.credentialFetches - before.credentialFetches == 1, "fetched once, kept until near its expiry")
            #expect(!server.logs.allText.contains("temporary/secret+key0001") && !server.logs.allText.contains(Self.containerToken))
        }
    }

    @Test("SageMaker with SAGEMAKER_CONTENT_TYPE=application/json: an Open Inference Protocol request to a Triton container, signed")
    func sageMakerJSON() async throws {
        let fake = try await FakeCloud()
        let fixture = try LeadScoringFixture.load()
        let server = try await Self.sageMaker(fake) { endpoint in
            endpoint.sageMakerContentType = .json
            endpoint.awsAccessKeyID = Self.accessKey
            endpoint.awsSecretAccessKey = Self.secretKey
        }
        try await server.test { client in try await Self.scoreRows(2, client: client, fixture: fixture) }
        let calls = try fake.requests().requests
        #expect(calls.count == 2 && calls.allSatisfy { $0["signature"] as? String == "valid" }, "\(calls)")
        #expect(calls.allSatisfy { ($0["headers"] as? [String: String])?["content-type"] == "application/json" })
        #expect(calls.allSatisfy { ($0["body"] as? String)?.hasPrefix(#"{"inputs":[{"name":"features""#) == true })
    }

    @Test(
        "Azure ML: the MLflow split frame with the model's feature names, the key as a bearer token, azureml-model-deployment; a bad key falls back"
    )
    func azure() async throws {
        let fake = try await FakeCloud()
        let fixture = try LeadScoringFixture.load()
        let server = try await TestServer.make { configuration in
            configuration.modelEndpoint.provider = .azure
            configuration.modelEndpoint.azureURL = "\(fake.url)/score"
            configuration.modelEndpoint.azureAPIKey = Self.azureKey
            configuration.modelEndpoint.azureDeployment = "blue"
            configuration.modelEndpoint.timeoutMilliseconds = 15_000
        }
        try await server.test { client in
            try await Self.scoreRows(3, client: client, fixture: fixture)
            let status = try #require(try await client.get("/status").body.jsonObject["model"] as? [String: Any])
            #expect(status["endpoint_provider"] as? String == "azure" && status["url"] as? String == "\(fake.url)/score")
        }
        let calls = try fake.requests().requests
        #expect(calls.count == 3)
        for (row, call) in calls.enumerated() {
            #expect((call["headers"] as? [String: String])?["azureml-model-deployment"] == "blue")
            let body = try JSONSerialization.jsonObject(with: Data((call["body"] as? String ?? "").utf8)) as? [String: Any]
            let frame = try #require(body?["input_data"] as? [String: Any])
            #expect(frame["columns"] as? [String] == fixture.feature_names)
            let data = try #require(frame["data"] as? [[Any]])
            #expect(data.count == 1 && data[0].count == fixture.rows[row].count)
            for (value, expected) in zip(data[0], fixture.rows[row]) {
                if let expected {
                    #expect((value as? Double).map { abs($0 - expected) <= 1e-6 * max(1, abs(expected)) } == true)
                } else {
                    #expect(value is NSNull)
                }
            }
        }
        #expect(!server.logs.allText.contains(Self.azureKey), "the key is never logged")

        let wrong = try await TestServer.make { configuration in
            configuration.modelEndpoint.provider = .azure
            configuration.modelEndpoint.azureURL = "\(fake.url)/score"
            configuration.modelEndpoint.azureAPIKey = "not-the-key-0001"
        }
        try await wrong.test { client in
            try await Self.scoredLocally(0, client: client, fixture: fixture)
            let metrics = try await client.get("/metrics").body.text
            #expect(MetricsTests.value(of: #"model_prediction_errors{model="lead-scoring",provider="azure"}"#, in: metrics) == 1)
        }
        #expect(wrong.logs.events(named: "MODEL_ENDPOINT_FALLBACK").first?.metadata["reason"]?.contains("answered 401") == true)
    }

    @Test("each missing or bad SageMaker and Azure setting stops start-up naming it; a model that is not tabular cannot be sent as rows")
    func settings() async throws {
        let sageMaker = [
            "MODEL_ENDPOINT_PROVIDER": "sagemaker", "SAGEMAKER_ENDPOINT_NAME": "lead-scoring-endpoint", "AWS_REGION": "us-east-1",
        ]
        let keys = ["AWS_ACCESS_KEY_ID": Self.accessKey, "AWS_SECRET_ACCESS_KEY": Self.secretKey]
        for (environment, key) in [
            (sageMaker.merging(keys) { $1 }.filter { $0.key != "SAGEMAKER_ENDPOINT_NAME" }, "SAGEMAKER_ENDPOINT_NAME"),
            (sageMaker.merging(keys) { $1 }.filter { $0.key != "AWS_REGION" }, "AWS_REGION"),
            (sageMaker, "AWS_ACCESS_KEY_ID"),
            (sageMaker.merging(["AWS_ACCESS_KEY_ID": Self.accessKey]) { $1 }, "AWS_SECRET_ACCESS_KEY"),
            (sageMaker.merging(keys) { $1 }.merging(["SAGEMAKER_CONTENT_TYPE": "text/plain"]) { $1 }, "SAGEMAKER_CONTENT_TYPE"),
            (sageMaker.merging(keys) { $1 }.merging(["SAGEMAKER_ENDPOINT_NAME": "-bad name"]) { $1 }, "SAGEMAKER_ENDPOINT_NAME"),
            (
                sageMaker.merging(keys) { $1 }.merging(["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": "runtime"]) { $1 },
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"
            ),
            (["MODEL_ENDPOINT_PROVIDER": "azure", "AZURE_ML_API_KEY": Self.azureKey], "AZURE_ML_ENDPOINT_URL"),
            (
                ["MODEL_ENDPOINT_PROVIDER": "azure", "AZURE_ML_ENDPOINT_URL": "https://e.eastus.inference.ml.azure.com/score"],
                "AZURE_ML_API_KEY"
            ),
            (
                ["MODEL_ENDPOINT_PROVIDER": "azure", "AZURE_ML_ENDPOINT_URL": "endpoint/score", "AZURE_ML_API_KEY": "k"],
                "AZURE_ML_ENDPOINT_URL"
            ),
        ] {
            do {
                _ = try CortexConfiguration.load(file: nil, environment: environment)
                Issue.record("\(environment) loaded")
            } catch let error as ConfigurationError {
                #expect(error.key == key, "\(environment): \(error)")
            }
        }
        let loaded = try CortexConfiguration.load(
            file: nil,
            environment: sageMaker.merging(["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc", "AWS_DEFAULT_REGION": "x"]) {
                $1
            })
        #expect(
            loaded.modelEndpoint.awsCredentials == .container(url: "http://169.254.170.2/v2/credentials/abc", token: nil, tokenFile: nil))
        #expect(loaded.modelEndpoint.awsRegion == "us-east-1", "AWS_REGION wins over AWS_DEFAULT_REGION")
        let summary = try CortexConfiguration.load(file: nil, environment: sageMaker.merging(keys) { $1 }).summary
        #expect(!summary.contains(Self.secretKey) && !summary.contains(Self.accessKey))

        // The image model as the scoring model: a [1, 3, H, W] input is not rows.
        await #expect(throws: ConfigurationError.self) {
            _ = try await TestServer.make(models: Repository.imageModels) { configuration in
                configuration.scoringModel = "vA"
                configuration.modelEndpoint.provider = .azure
                configuration.modelEndpoint.azureURL = "http://127.0.0.1:1/score"
                configuration.modelEndpoint.azureAPIKey = Self.azureKey
            }
        }
    }

    @Test("answers read as rows: CSV by line or on one line, a JSON list, SageMaker's predictions with scores, several values per row")
    func rowAnswers() throws {
        func metadata(_ shape: [Int]) -> ModelMetadata {
            ModelMetadata(
                name: "m", version: "1", platform: "p",
                inputs: [TensorSpec(name: "features", datatype: .fp32, shape: TensorShape([-1, 2]))],
                outputs: [TensorSpec(name: "predictions", datatype: .fp32, shape: TensorShape(shape))])
        }
        for body in [
            "0.25\n0.75\n", "0.25,0.75", "[0.25, 0.75]", #"{"predictions": [{"score": 0.25}, {"score": 0.75}]}"#, "[[0.25],[0.75]]",
        ] {
            let tensors = try TabularRows.predictions(Array(body.utf8), rows: 2, metadata: metadata([-1]))
            #expect(tensors.first?.data == .float([0.25, 0.75]) && tensors.first?.shape.dimensions == [2], "\(body)")
        }
        for body in ["0.1,0.9\n0.6,0.4", #"{"predictions": [[0.1, 0.9], {"score": [0.6, 0.4]}]}"#] {
            let tensors = try TabularRows.predictions(Array(body.utf8), rows: 2, metadata: metadata([-1, 2]))
            #expect(tensors.first?.data == .float([0.1, 0.9, 0.6, 0.4]) && tensors.first?.shape.dimensions == [2, 2], "\(body)")
        }
        for bad in ["0.25", "0.25\nx", "[0.25]", #"{"outputs": []}"#, #"{"predictions": [{"label": 1}, 2]}"#, "[[1,2],[3,4]]", ""] {
            #expect(throws: (any Error).self, "\(bad)") {
                try TabularRows.predictions(Array(bad.utf8), rows: 2, metadata: metadata([-1]))
            }
        }
        let input = Tensor(name: "features", datatype: .fp32, shape: TensorShape([2, 3]), data: .float([1, .nan, 0.5, 3, 4, -2.25]))
        #expect(try TabularRows.csv([input]) == "1,,0.5\n3,4,-2.25\n")
        #expect(
            try TabularRows.splitFrame([input], columns: ["a", "b", "c"])
                == #"{"input_data":{"columns":["a","b","c"],"index":[0,1],"data":[[1,null,0.5],[3,4,-2.25]]}}"#)
    }
}
