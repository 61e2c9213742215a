public import CortexCore
public import CortexRuntime
import Foundation
public import Hummingbird

/// OpenAI's `POST /v1/embeddings`, served by a local sentence-embedding model (``EmbeddingModel``)
/// with the same API keys, rate limits and credits as the other inference routes: `input` as a
/// string or a list of strings, `encoding_format` `float` or `base64`, `dimensions` when it is the
/// model's; `usage` counts the input tokens, and each 1,000 of them costs `EMBEDDING_PRICE_PER_1K`.
/// Errors take OpenAI's shape, as on the LLM routes.
public struct EmbeddingsController<Context: AuthenticatedContext>: Sendable {
    let model: EmbeddingModel
    let pipeline: InferencePipeline
    let pricePer1K: Credits
    let maxBodyBytes: Int
    /// Texts one request may carry (OpenAI's limit).
    static var maximumInputs: Int { 2048 }
    /// Members of OpenAI's embedding request.
    static var members: Set<String> { ["model", "input", "encoding_format", "dimensions", "user"] }

    /// Creates the controller.
    public init(model: EmbeddingModel, pipeline: InferencePipeline, pricePer1K: Credits, maxBodyBytes: Int) {
        self.model = model
        self.pipeline = pipeline
        self.pricePer1K = pricePer1K
        self.maxBodyBytes = maxBodyBytes
    }

    /// Adds `POST /v1/embeddings`.
    public func addRoutes(to router: some RouterMethods<Context>) {
        router.post("/v1/embeddings") { request, context in
            do {
                return try await answer(request, context)
            } catch let error as APIError {
                return LLMController<Context>.openAIError(error, requestID: context.requestID)
            }
        }
    }

    /// What a request asks for, checked before anything is held.
    struct Call {
        var texts: [String]
        var base64: Bool
    }

    /// Reads a body (a JSON object).
    ///
    /// - Throws: ``APIError`` 400 naming the field, 404 `model_not_found` for another model.
    func call(_ body: JSONValue) throws(APIError) -> Call {
        for member in try body.object(at: "") where !Self.members.contains(member.key) {
            throw APIError.invalidInput(
                "'\(member.key)' is not a member of an embedding request (\(Self.members.sorted().joined(separator: ", ")))")
        }
        let name = try body.required("model", in: "").string(at: "model")
        guard name == model.name else {
            throw APIError(
                status: 404, code: "model_not_found", message: "model '\(name)' is not an embedding model served here; use '\(model.name)'")
        }
        let texts: [String]
        switch try body.required("input", in: "") {
        case .string(let text): texts = [text]
        case .array(let items):
            guard (1...Self.maximumInputs).contains(items.count) else {
                throw APIError.invalidInput("'input' must hold 1 to \(Self.maximumInputs) texts; got \(items.count)")
            }
            texts = try items.enumerated().map { index, item throws(APIError) in
                if case .number = item { throw APIError.invalidInput("'input' as token ids is not supported; send the texts") }
                if case .array = item { throw APIError.invalidInput("'input[\(index)]' as token ids is not supported; send the texts") }
                return try item.string(at: "input[\(index)]")
            }
        default:
            throw APIError.invalidJSON("'input' must be a string or a list of strings")
        }
        if let index = texts.firstIndex(where: \.isEmpty) {
            throw APIError.invalidInput(texts.count == 1 ? "'input' must not be empty" : "'input[\(index)]' must not be empty")
        }
        var base64 = false
        if let format = body["encoding_format"], format != .null {
            switch try format.string(at: "encoding_format") {
            case "float": break
            case "base64": base64 = true
            case let other: throw APIError.invalidInput("'encoding_format' must be 'float' or 'base64'; got '\(other)'")
            }
        }
        if let dimensions = body["dimensions"], dimensions != .null, dimensions.intValue != model.dimensions {
            throw APIError.invalidInput(
                "'dimensions' must be \(model.dimensions): model '\(model.name)' makes vectors of \(model.dimensions) and cannot shorten them"
            )
        }
        if let user = body["user"], user != .null { _ = try user.string(at: "user") }
        return Call(texts: texts, base64: base64)
    }

    private func answer(_ request: Request, _ context: Context) async throws -> Response {
        let buffer = try await request.collectBody(limit: maxBodyBytes)
        let call = try call(try JSONValue.parse(buffer))
        let tokens = call.texts.map(model.tokens)
        let count = tokens.reduce(0) { $0 + $1.count }
        // Known before the work: held and settled at once.
        let price = pricePer1K.multiplied(by: Int64(count))?.thousandthRoundedUp ?? Credits(microcredits: .max / 1000)
        let model = model
        let cost = Billing.Cost<[[Float]]>(held: price) { vectors, _ in
            (price, ResponseContent(json: Self.render(vectors, model: model.name, tokens: count, base64: call.base64)))
        }
        return try await pipeline.charge(cost, model: model.name, request: request, body: buffer, context: context) {
            try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
                // Each text on its own: the batcher runs texts of similar length together.
                for (index, ids) in tokens.enumerated() { group.addTask { (index, try await model.embed(ids)) } }
                var vectors = [[Float]](repeating: [], count: tokens.count)
                for try await (index, vector) in group { vectors[index] = vector }
                return vectors
            }
        }
        .response()
    }

    /// OpenAI's answer: a list of embeddings, as numbers or as base64 of little-endian 32-bit floats.
    static func render(_ vectors: [[Float]], model: String, tokens: Int, base64: Bool) -> String {
        var json = JSONWriter(capacity: 64 + vectors.count * (base64 ? 2_100 : 4_000))
        json.beginObject()
        json.member("object", "list")
        json.key("data")
        json.beginArray()
        for (index, vector) in vectors.enumerated() {
            json.beginObject()
            json.member("object", "embedding")
            json.member("index", index)
            json.key("embedding")
            if base64 {
                var bytes = [UInt8]()
                bytes.reserveCapacity(vector.count * 4)
                for value in vector { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
                json.string(Data(bytes).base64EncodedString())
            } else {
                json.beginArray()
                for value in vector { json.number(value) }
                json.endArray()
            }
            json.endObject()
        }
        json.endArray()
        json.member("model", model)
        json.key("usage")
        json.beginObject()
        json.member("prompt_tokens", tokens)
        json.member("total_tokens", tokens)
        json.endObject()
        json.endObject()
        return json.text
    }
}
