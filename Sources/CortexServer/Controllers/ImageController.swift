import CortexCore
public import CortexRuntime
import Foundation
public import Hummingbird

/// The A/B image service's image classification: `POST /v1/infer` with `{"image_b64": "<PNG or JPEG, base64>",
/// "img_size": 224}`.
///
/// The image is decoded (libpng, libjpeg-turbo) to the model's colour, resized to
/// `img_size`×`img_size`, normalised as the model's `image:` settings say, run, and answered with
/// the most probable classes. Optional: `"model"` (default `IMAGE_MODEL`, `vA`), `"top_k"` (1 to
/// the number of labels, default 5).
public struct ImageController<Context: AuthenticatedContext>: Sendable {
    /// The endpoint's name for its traffic split and `traffic_requests_total`.
    public static var endpoint: String { CortexConfiguration.Traffic.imageEndpoint }

    /// Largest `img_size` accepted.
    public static var maximumImageSize: Int { 1024 }

    /// The order of a billed inference: parse, validate, limit, hold, run, settle.
    let pipeline: InferencePipeline
    let defaultModel: String
    let maxBodyBytes: Int
    let decoder: ImageDecoder

    /// Creates the controller.
    public init(
        pipeline: InferencePipeline, defaultModel: String, maxBodyBytes: Int,
        decoder: ImageDecoder = ImageDecoder()
    ) {
        self.pipeline = pipeline
        self.defaultModel = defaultModel
        self.maxBodyBytes = maxBodyBytes
        self.decoder = decoder
    }

    /// Adds `POST /v1/infer` (needs an API key when keys are required).
    public func addRoutes(to router: some RouterMethods<Context>) {
        router.post(RouterPath(Self.endpoint)) { request, context in try await self.infer(request, context) }
    }

    func infer(_ request: Request, _ context: Context) async throws -> Response {
        let buffer = try await request.collectBody(limit: maxBodyBytes)
        let body = try JSONValue.parse(buffer)
        _ = try body.object(at: "")
        // A model named in the body is served as asked; otherwise the traffic split (vA/vB) picks it.
        let named = try body["model"].map { value throws(APIError) in try value.string(at: "model") }
        let variant = named == nil ? pipeline.variant(of: Self.endpoint, request: request, context: context) : nil
        let name = named ?? variant?.model ?? defaultModel
        let model = try pipeline.runner.model(named: name, logger: context.logger)
        let requestID = context.requestID
        let decoder = self.decoder
        return try await pipeline.infer(
            model, request: request, context: context,
            variant: variant ?? InferencePipeline.Variant(endpoint: Self.endpoint, model: name)
        ) {
            let input = try Self.input(for: model, body: body, decoder: decoder)
            return (buffer, [input.tensor], (input.labels, input.size, input.topK))
        } render: { outputs, parsed in
            guard let output = outputs.first, case .float(let values) = output.data, !values.isEmpty else {
                throw APIError.inferenceFailed(model: model.metadata.name)
            }
            return ResponseContent(
                json: Self.render(values, labels: parsed.0, topK: parsed.2, model: model.metadata, size: parsed.1, requestID: requestID))
        } shadowInputs: { shadow in
            // The shadow's own size where it takes one, else the size asked for.
            [try Self.input(for: shadow, body: body, decoder: decoder, sizing: .shadow).tensor]
        }
    }

    /// How `img_size` is read: as asked (refused when the model takes another size), or for a
    /// shadow copy, which follows the shadow model's own fixed size.
    enum Sizing {
        case request, shadow
    }

    /// The body's image as `model`'s input, and the labels, size and `top_k` of the answer.
    static func input(for model: any InferenceModel, body: JSONValue, decoder: ImageDecoder, sizing: Sizing = .request) throws(APIError)
        -> (tensor: Tensor, labels: [String], size: Int, topK: Int)
    {
        let name = model.metadata.name
        guard let image = model.image, let input = model.metadata.inputs.first else {
            throw APIError.invalidInput("model '\(name)' does not classify images; POST /v2/models/\(name)/infer instead")
        }
        let asked = try integer(body["img_size"], name: "img_size", in: 1...maximumImageSize)
        let size = (sizing == .shadow ? image.fixedHeight ?? asked : asked ?? image.fixedHeight) ?? 224
        if let height = image.fixedHeight, let width = image.fixedWidth, height != size || width != size {
            throw APIError.invalidInput("model '\(name)' takes \(height)x\(width) images; img_size must be \(height)")
        }
        let labels = image.labels
        let topK = try integer(body["top_k"], name: "top_k", in: 1...max(1, labels.count)) ?? min(5, max(1, labels.count))
        let encoded = try body.required("image_b64", in: "").string(at: "image_b64")
        let bytes = try base64(encoded)
        let decoded = try decoder.decode(bytes, channels: image.color.channels)
        return (image.tensor(from: decoded, height: size, width: size, name: input.name), labels, size, topK)
    }

    /// `{"model": "vA", "model_version": "1.0.0", "label": "3", "probability": 0.98,
    /// "predictions": [{"label": "3", "probability": 0.98}, ...], "img_size": 8, "request_id": ...}`
    static func render(_ values: [Double], labels: [String], topK: Int, model: ModelMetadata, size: Int, requestID: String) -> String {
        let ranked = values.indices.sorted { values[$0] > values[$1] || (values[$0] == values[$1] && $0 < $1) }.prefix(topK)
        func label(_ index: Int) -> String { index < labels.count ? labels[index] : String(index) }
        var json = JSONWriter(capacity: 256)
        json.beginObject()
        json.member("model", model.name)
        json.member("model_version", model.version)
        if let best = ranked.first {
            json.member("label", label(best))
            json.key("probability")
            json.number(Float(values[best]))
        }
        json.key("predictions")
        json.beginArray()
        for index in ranked {
            json.beginObject()
            json.member("label", label(index))
            json.key("probability")
            json.number(Float(values[index]))
            json.endObject()
        }
        json.endArray()
        json.member("img_size", size)
        json.member("request_id", requestID)
        json.endObject()
        return json.text
    }

    private static func integer(_ value: JSONValue?, name: String, in range: ClosedRange<Int>) throws(APIError) -> Int? {
        guard let value else { return nil }
        guard case .number(let number) = value, let integer = Int(exactly: number), range.contains(integer) else {
            throw APIError.invalidInput("'\(name)' must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return integer
    }

    /// Standard base64 (whitespace allowed), optionally as a `data:image/...;base64,` URL.
    static func base64(_ text: String) throws(APIError) -> [UInt8] {
        var payload = Substring(text)
        if payload.hasPrefix("data:"), let comma = payload.firstIndex(of: ",") {
            payload = payload[payload.index(after: comma)...]
        }
        guard !payload.isEmpty else { throw APIError(status: 400, code: "invalid_image", message: "'image_b64' is empty") }
        guard let data = Data(base64Encoded: String(payload), options: .ignoreUnknownCharacters), !data.isEmpty,
            payload.allSatisfy({ $0.isLetter || $0.isNumber || "+/=\r\n ".contains($0) })
        else {
            throw APIError(status: 400, code: "invalid_image", message: "'image_b64' is not valid base64")
        }
        return [UInt8](data)
    }
}
