import AsyncHTTPClient
public import CortexCore
import Foundation
public import NIOCore
public import NIOHTTP1
import Synchronization

/// How one kind of remote endpoint is spoken to: the request for a call and the outputs read
/// from its answer. ``RemoteModel`` owns the rest (timeouts, the breaker, the fallback).
public protocol RemoteWire: Sendable {
    /// `remote`, `sagemaker` or `azure`: `MODEL_ENDPOINT_PROVIDER`, and the metrics' `provider` label.
    var provider: String { get }
    /// Where calls go, for `/status` and the log; never a secret.
    var target: String { get }
    /// The model's name there, when the endpoint names models (`/status`'s `remote_model`).
    var remoteModel: String? { get }
    /// The request for one call with `inputs` (already checked against `metadata`).
    func request(for inputs: [Tensor], metadata: ModelMetadata) async throws -> RemoteRequest
    /// The outputs in a 200's body, shaped as `metadata` says.
    func outputs(_ body: [UInt8], inputs: [Tensor], metadata: ModelMetadata) throws -> [Tensor]
}

/// A model whose inference runs elsewhere (`MODEL_ENDPOINT_PROVIDER`: another Open Inference
/// Protocol server, a SageMaker endpoint, an Azure ML online endpoint), with the local model of
/// the same name as its fallback within the same request.
///
/// Inputs are validated here against the local model's signature before any call. Any failure
/// (no connection, a timeout, an answer other than 200, an answer that does not fit the
/// signature) counts against a circuit breaker and the request runs on the local model instead;
/// while the breaker is open the remote is not tried. Since the input fits the local signature, a
/// remote that refuses it is the remote's mismatch, not the client's fault.
public final class RemoteModel: InferenceModel {
    /// The local model's: the signature requests are checked against, and the fallback.
    public let local: any InferenceModel
    public var metadata: ModelMetadata { local.metadata }
    public var image: ImagePreprocessing? { local.image }
    public var lifetime: AnyObject? { local.lifetime }

    /// How calls are made.
    public let wire: any RemoteWire
    let timeout: Duration
    let clients: LoopClients
    private let breaker: Mutex<CircuitBreaker>
    private let now: @Sendable () -> Int64
    /// Told of each remote failure (the reason), for the metrics and the log.
    private let onFailure: @Sendable (String) -> Void
    /// Whether the last request was answered by the local fallback.
    private let fallbackActive = Atomic(false)

    /// A remote model over `local`.
    ///
    /// - Parameters:
    ///   - now: Monotonic nanoseconds, for the breaker's cooldown.
    ///   - onFailure: Called with the reason each time the remote fails and the local model answers.
    public init(
        local: any InferenceModel, wire: any RemoteWire, timeout: Duration, breaker: CircuitBreaker,
        now: @escaping @Sendable () -> Int64, onFailure: @escaping @Sendable (String) -> Void
    ) {
        self.local = local
        self.wire = wire
        self.timeout = timeout
        self.clients = ProviderHTTP.clients(connect: timeout, read: timeout)
        self.breaker = Mutex(breaker)
        self.now = now
        self.onFailure = onFailure
    }

    /// Whether the last request fell back to the local model (`/status`'s `model.fallback_active`).
    public var isFallbackActive: Bool { fallbackActive.load(ordering: .relaxed) }
    /// The breaker's state: `closed`, `open` or `half_open`.
    public var circuit: String { breaker.withLock { $0.state.name } }

    /// Synchronous inference (warm-up) runs locally.
    public func infer(_ inputs: [Tensor]) throws -> [Tensor] {
        try local.infer(inputs)
    }

    public func predict(_ inputs: [Tensor]) async throws -> Prediction {
        let allowed = breaker.withLock { $0.allow(now: now()).allowed }
        if allowed {
            do {
                let outputs = try await call(inputs)
                breaker.withLock { _ = $0.recordSuccess() }
                fallbackActive.store(false, ordering: .relaxed)
                return Prediction(outputs: outputs, queuedNanoseconds: nil, execution: nil)
            } catch {
                breaker.withLock { _ = $0.recordFailure(now: now()) }
                onFailure("\(error)")
            }
        } else {
            onFailure("circuit open")
        }
        fallbackActive.store(true, ordering: .relaxed)
        return try await local.predict(inputs)
    }

    /// Largest answer read.
    static let maximumAnswer = 64 << 20

    /// What went wrong with the remote, as the log and `/status` say it.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// One call: the wire's request, its answer read against the signature.
    func call(_ inputs: [Tensor]) async throws -> [Tensor] {
        var request = try await wire.request(for: inputs, metadata: local.metadata)
        // Not signed (SageMaker signs the headers it lists), so added after the wire's request.
        for (name, value) in TracePropagation.headers { request.headers.replaceOrAdd(name: name, value: value) }
        let status: Int
        let body: ByteBuffer
        do {
            if let plain = plainURL(request.url) {
                // http or https (another Cortex or Triton beside this one, a cloud endpoint): the lean client.
                let answer = try await UpstreamHTTPClient.shared.execute(
                    UpstreamRequest(
                        method: .POST, address: plain.address, target: plain.path, headers: request.headers, body: request.body),
                    connectTimeout: timeout, readTimeout: timeout, deadline: .now() + TimeAmount(timeout))
                status = answer.status
                body = try await answer.body.collect(upTo: Self.maximumAnswer)
            } else {
                var call = HTTPClientRequest(url: request.url)
                call.method = .POST
                call.headers = request.headers
                call.body = .bytes(request.body)
                let response = try await clients.current.execute(call, timeout: TimeAmount(timeout))
                status = Int(response.status.code)
                body = try await response.body.collect(upTo: Self.maximumAnswer)
            }
        } catch {
            throw Failure(description: "\(wire.target) did not answer: \(error)")
        }
        guard status == 200 else {
            throw Failure(description: "\(wire.target) answered \(status): \(String(buffer: body).prefix(200))")
        }
        return try wire.outputs(Array(buffer: body), inputs: inputs, metadata: local.metadata)
    }
}

/// One call to a remote endpoint, as its wire builds it: a POST of `body` to `url`.
public struct RemoteRequest: Sendable {
    public var url: String
    public var headers: HTTPHeaders
    public var body: ByteBuffer

    public init(url: String, headers: HTTPHeaders, body: ByteBuffer) {
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// `http(s)://host[:port]/path[?query]` as an address and the request target; `nil` for any
/// other URL (one with a user, say), which AsyncHTTPClient carries.
func plainURL(_ url: String) -> PlainUpstream? {
    let scheme = URLComponents(string: url)?.scheme?.lowercased()
    guard let components = URLComponents(string: url), scheme == "http" || scheme == "https", let host = components.host,
        !host.isEmpty, components.user == nil
    else { return nil }
    let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
    let tls = scheme == "https"
    return PlainUpstream(
        address: UpstreamAddress(host: host, port: components.port ?? (tls ? 443 : 80), tls: tls),
        path: components.percentEncodedQuery.map { path + "?" + $0 } ?? path)
}

/// `MODEL_ENDPOINT_PROVIDER=remote`: another Open Inference Protocol server (Triton, KServe,
/// another Cortex). A call is `POST {url}/v2/models/{model}/infer` in JSON, with
/// `Authorization: Bearer` when a key is configured.
public struct InferenceProtocolWire: RemoteWire {
    public var provider: String { "remote" }
    /// The server's base URL, without a trailing slash.
    public let url: String
    /// The model's name there.
    public let model: String
    /// Sent as a bearer token (`MODEL_ENDPOINT_API_KEY`); a secret, never logged.
    let apiKey: String?

    public var target: String { url }
    public var remoteModel: String? { model }

    public init(url: String, model: String, apiKey: String?) {
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.model = model
        self.apiKey = apiKey
    }

    public func request(for inputs: [Tensor], metadata: ModelMetadata) async throws -> RemoteRequest {
        var headers = HTTPHeaders([("Content-Type", "application/json")])
        if let apiKey { headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        return RemoteRequest(url: "\(url)/v2/models/\(model)/infer", headers: headers, body: ByteBuffer(string: Self.requestBody(inputs)))
    }

    public func outputs(_ body: [UInt8], inputs: [Tensor], metadata: ModelMetadata) throws -> [Tensor] {
        try Self.outputs(body, for: metadata)
    }

    /// `{"inputs": [{"name", "shape", "datatype", "data"}]}`, data flat in row-major order.
    package static func requestBody(_ inputs: [Tensor]) -> String {
        var json = JSONWriter(capacity: 64 + inputs.reduce(0) { $0 + $1.data.count * 8 })
        json.beginObject()
        json.key("inputs")
        json.beginArray()
        for input in inputs {
            json.beginObject()
            json.member("name", input.name)
            json.key("shape")
            json.beginArray()
            for dimension in input.shape.dimensions { json.number(Double(dimension)) }
            json.endArray()
            json.member("datatype", input.datatype.rawValue)
            json.key("data")
            json.beginArray()
            switch input.data {
            case .float(let values): for value in values { if value.isNaN { json.null() } else { json.number(value) } }
            case .int(let values): for value in values { json.number(Double(value)) }
            case .bool(let values): for value in values { json.bool(value) }
            case .bytes(let values): for value in values { json.string(value) }
            }
            json.endArray()
            json.endObject()
        }
        json.endArray()
        json.endObject()
        return json.text
    }

    /// The answer's outputs, each matched by name to the signature's and shaped as it says.
    package static func outputs(_ bytes: [UInt8], for metadata: ModelMetadata) throws -> [Tensor] {
        let root: JSONValue
        do {
            root = try JSONParser.parse(bytes)
        } catch {
            throw RemoteModel.Failure(description: "the answer is not JSON")
        }
        guard case .object(let members) = root, let list = members.first(where: { $0.0 == "outputs" })?.1, case .array(let outputs) = list
        else { throw RemoteModel.Failure(description: "the answer has no outputs") }
        var byName: [String: [(String, JSONValue)]] = [:]
        for output in outputs {
            guard case .object(let fields) = output, let name = fields.first(where: { $0.0 == "name" })?.1, case .string(let text) = name
            else { continue }
            byName[text] = fields
        }
        return try metadata.outputs.map { spec in
            guard let fields = byName[spec.name] else { throw RemoteModel.Failure(description: "the answer has no output '\(spec.name)'") }
            guard let shapeValue = fields.first(where: { $0.0 == "shape" })?.1, case .array(let dimensions) = shapeValue,
                let data = fields.first(where: { $0.0 == "data" })?.1
            else { throw RemoteModel.Failure(description: "output '\(spec.name)' has no shape or data") }
            let shape = dimensions.compactMap { value -> Int? in if case .number(let number) = value { Int(exactly: number) } else { nil } }
            var numbers: [Double] = []
            func flatten(_ value: JSONValue) throws {
                switch value {
                case .number(let number): numbers.append(number)
                case .null: numbers.append(.nan)
                case .array(let items): for item in items { try flatten(item) }
                default: throw RemoteModel.Failure(description: "output '\(spec.name)' holds \(value.kind), not numbers")
                }
            }
            try flatten(data)
            guard shape.count == dimensions.count, shape.reduce(1, *) == numbers.count else {
                throw RemoteModel.Failure(description: "output '\(spec.name)' has \(numbers.count) values for shape \(shape)")
            }
            let tensorData: TensorData
            switch spec.datatype {
            case .bool: tensorData = .bool(numbers.map { $0 != 0 })
            case .fp16, .fp32, .fp64: tensorData = .float(numbers)
            case .bytes: throw RemoteModel.Failure(description: "output '\(spec.name)' is BYTES, which a remote endpoint cannot serve here")
            default:
                guard numbers.allSatisfy({ $0.rounded() == $0 && abs($0) < 9.2e18 }) else {
                    throw RemoteModel.Failure(description: "output '\(spec.name)' is \(spec.datatype.rawValue) but holds fractions")
                }
                tensorData = .int(numbers.map { Int64($0) })
            }
            return Tensor(name: spec.name, datatype: spec.datatype, shape: TensorShape(shape), data: tensorData)
        }
    }
}
