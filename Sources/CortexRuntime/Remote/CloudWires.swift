public import CortexCore
public import Foundation
import NIOCore
import NIOHTTP1

/// `MODEL_ENDPOINT_PROVIDER=sagemaker`: SageMaker's `InvokeEndpoint`, `POST
/// /endpoints/{SAGEMAKER_ENDPOINT_NAME}/invocations` on the runtime host of `AWS_REGION`, signed
/// with Signature Version 4 (service `sagemaker`).
///
/// The body is the rows as `text/csv` (SageMaker's built-in XGBoost and most tabular containers;
/// the answer read as JSON or CSV predictions), or `application/json` as an Open Inference
/// Protocol request (SageMaker's Triton containers; the answer's `outputs` read by name).
public struct SageMakerWire: RemoteWire {
    public enum ContentType: String, Sendable, CaseIterable {
        case csv = "text/csv"
        case json = "application/json"
    }

    public var provider: String { "sagemaker" }
    public let endpointName: String
    public let region: String
    /// `https://runtime.sagemaker.{region}.amazonaws.com`, or `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`.
    public let baseURL: String
    public let contentType: ContentType
    let credentials: AWSCredentialSource
    /// The signing date.
    let clock: @Sendable () -> Date
    /// Read from `baseURL` once: the invocation's URL, the path signed, and the `Host` header as
    /// the client sends it (with the port when it is not the scheme's own).
    let invocationURL: String
    let signedPath: String
    let hostHeader: String

    public var target: String { "\(baseURL)/endpoints/\(endpointName)" }
    public var remoteModel: String? { endpointName }

    public init(
        endpointName: String, region: String, baseURL: String?, contentType: ContentType, credentials: AWSCredentialSource,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.endpointName = endpointName
        self.region = region
        let base = baseURL ?? "https://runtime.sagemaker.\(region).amazonaws.com"
        self.baseURL = base.hasSuffix("/") ? String(base.dropLast()) : base
        self.contentType = contentType
        self.credentials = credentials
        self.clock = clock
        let components = URLComponents(string: self.baseURL)
        let host = components?.host ?? ""
        let defaultPort = components?.scheme == "https" ? 443 : 80
        self.hostHeader = components?.port.map { $0 == defaultPort ? host : "\(host):\($0)" } ?? host
        self.signedPath = (components?.path ?? "") + "/endpoints/\(endpointName)/invocations"
        self.invocationURL = self.baseURL + "/endpoints/\(endpointName)/invocations"
    }

    public func request(for inputs: [Tensor], metadata: ModelMetadata) async throws -> RemoteRequest {
        let body: [UInt8] =
            switch contentType {
            case .csv: Array(try TabularRows.csv(inputs).utf8)
            case .json: Array(InferenceProtocolWire.requestBody(inputs).utf8)
            }
        guard !hostHeader.isEmpty else { throw RemoteModel.Failure(description: "\(baseURL) is not a URL") }
        let headers = [
            ("Host", hostHeader), ("Content-Type", contentType.rawValue), ("Accept", "application/json"),
        ]
        let signer = SignatureV4(credentials: try await credentials.current(), region: region, service: "sagemaker")
        let signed = signer.headers(method: "POST", path: signedPath, headers: headers, body: body, date: clock())
        return RemoteRequest(url: invocationURL, headers: HTTPHeaders(headers + signed), body: ByteBuffer(bytes: body))
    }

    public func outputs(_ body: [UInt8], inputs: [Tensor], metadata: ModelMetadata) throws -> [Tensor] {
        switch contentType {
        case .csv: try TabularRows.predictions(body, rows: inputs.first?.shape.dimensions.first ?? 0, metadata: metadata)
        case .json: try InferenceProtocolWire.outputs(body, for: metadata)
        }
    }
}

/// `MODEL_ENDPOINT_PROVIDER=azure`: an Azure ML managed online endpoint's scoring URI
/// (`AZURE_ML_ENDPOINT_URL`, `https://{endpoint}.{region}.inference.ml.azure.com/score`), with the
/// endpoint key as `Authorization: Bearer` and, to pin one deployment of the endpoint,
/// `azureml-model-deployment: {AZURE_ML_DEPLOYMENT_NAME}`.
///
/// The body is the MLflow deployments' input, a pandas `split` frame under `input_data` with the
/// model's feature names as columns; the answer is the list of predictions (or an object's
/// `predictions`), one per row.
public struct AzureMLWire: RemoteWire {
    public var provider: String { "azure" }
    public let url: String
    /// The endpoint's key (`AZURE_ML_API_KEY`); a secret, never logged.
    let apiKey: String
    public let deployment: String?

    public var target: String { url }
    public var remoteModel: String? { deployment }

    public init(url: String, apiKey: String, deployment: String?) {
        self.url = url
        self.apiKey = apiKey
        self.deployment = deployment
    }

    public func request(for inputs: [Tensor], metadata: ModelMetadata) async throws -> RemoteRequest {
        var headers = HTTPHeaders([("Content-Type", "application/json"), ("Authorization", "Bearer \(apiKey)")])
        if let deployment { headers.add(name: "azureml-model-deployment", value: deployment) }
        return RemoteRequest(
            url: url, headers: headers, body: ByteBuffer(string: try TabularRows.splitFrame(inputs, columns: metadata.featureNames)))
    }

    public func outputs(_ body: [UInt8], inputs: [Tensor], metadata: ModelMetadata) throws -> [Tensor] {
        try TabularRows.predictions(body, rows: inputs.first?.shape.dimensions.first ?? 0, metadata: metadata)
    }
}
