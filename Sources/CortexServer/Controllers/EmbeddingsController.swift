public import CortexCore
public import CortexRuntime
import Foundation
public import Hummingbird

/// OpenAI's `POST /v1/embeddings`, with the same API keys, rate limits and credits as the other
/// inference routes: `input` as a string or a list of strings, `encoding_format` `float` or
/// `base64`; `usage` counts the input tokens. `model` picks who embeds:
/// - the local sentence-embedding model (``EmbeddingModel``, `EMBEDDING_MODEL_DIR`): tokenized,
///   run and pooled here; `dimensions` only when it is the model's; each 1,000 tokens cost
///   `EMBEDDING_PRICE_PER_1K`;
/// - an LLM deployment (its name or a provider's model): its providers' embedding routes
///   (OpenAI's `/v1/embeddings`, Ollama's `/api/embed`) in the chain's order, billed at the
///   deployment's `LLM_PRICE_INPUT_PER_1K` for the tokens the provider reports (held first: one
///   per byte, the most any tokenizer makes) and counted against `LLM_TOKENS_PER_MINUTE`.
/// Errors take OpenAI's shape, as on the LLM routes.
public struct EmbeddingsController<Context: AuthenticatedContext>: Sendable {
    let model: EmbeddingModel?
    /// LLM deployments by the names `model` may take (``LLMController``'s).
    let deployments: [String: LLMGateway]
    let pipeline: InferencePipeline
    let pricePer1K: Credits
    let tokenLimits: TokenRateLimits
    let maxBodyBytes: Int
    /// Texts one request may carry (OpenAI's limit).
    static var maximumInputs: Int { 2048 }
    /// Members of OpenAI's embedding request.
    static var members: Set<String> { ["model", "input", "encoding_format", "dimensions", "user"] }

    /// Creates the controller; `gateways` are the LLM deployments (the route serves embeddings
    /// for them too), `model` the local embedding model. At least one of them must be given.
    public init(
        model: EmbeddingModel?, gateways: [LLMGateway], pipeline: InferencePipeline, pricePer1K: Credits, tokenLimits: TokenRateLimits,
        maxBodyBytes: Int
    ) {
        self.model = model
        self.deployments = LLMController<Context>.names(gateways)
        self.pipeline = pipeline
        self.pricePer1K = pricePer1K
        self.tokenLimits = tokenLimits
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
        /// Who embeds: the local model, or an LLM deployment (with the client's other members).
        var target: Target
        var options: [ChatOption]
    }

    enum Target {
        case local(EmbeddingModel)
        case deployment(LLMGateway)
    }

    /// Reads a body (a JSON object; `memberText` its members' text).
    ///
    /// - Throws: ``APIError`` 400 or 422 naming the field, 404 `model_not_found` for a model not served.
    func call(_ body: JSONValue, memberText: [String] = []) throws(APIError) -> Call {
        let members = try body.object(at: "")
        for member in members where !Self.members.contains(member.key) {
            throw APIError.invalidInput(
                "'\(member.key)' is not a member of an embedding request (\(Self.members.sorted().joined(separator: ", ")))")
        }
        let name = try body.required("model", in: "").string(at: "model")
        let target: Target
        if let model, name == model.name {
            target = .local(model)
        } else if let gateway = deployments[name] {
            target = .deployment(gateway)
        } else {
            let names = ([model?.name].compactMap { $0 } + deployments.keys.sorted()).map { "'\($0)'" }.joined(separator: ", ")
            throw APIError(status: 404, code: "model_not_found", message: "model '\(name)' is not served here for embeddings; use \(names)")
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
        if let user = body["user"], user != .null { _ = try user.string(at: "user") }
        var options: [ChatOption] = []
        switch target {
        case .local(let model):
            if let dimensions = body["dimensions"], dimensions != .null, dimensions.intValue != model.dimensions {
                throw APIError.invalidInput(
                    "'dimensions' must be \(model.dimensions): model '\(model.name)' makes vectors of \(model.dimensions) and cannot shorten them"
                )
            }
        case .deployment(let gateway):
            // `dimensions` and `user` go to the provider as the client wrote them.
            for (member, text) in zip(members, memberText) where member.key == "dimensions" || member.key == "user" {
                options.append(ChatOption(name: member.key, value: member.value, json: text))
            }
            if gateway.configuration.providers.contains(where: { $0.kind == .ollama }) {
                do throws(OllamaProvider.Unsupported) {
                    try OllamaProvider.checkEmbedding(EmbeddingRequest(texts: texts, options: options))
                } catch {
                    throw APIError(
                        status: 400, code: "unsupported_parameter",
                        message:
                            "'\(error.field)' cannot be sent to deployment '\(gateway.configuration.deployment)', which has an Ollama provider: \(error.reason)"
                    )
                }
            }
        }
        return Call(texts: texts, base64: base64, target: target, options: options)
    }

    private func answer(_ request: Request, _ context: Context) async throws -> Response {
        let buffer = try await request.collectBody(limit: maxBodyBytes)
        let (body, memberText) = try JSONValue.parseKeepingMemberText(buffer)
        let call = try call(body, memberText: memberText)
        switch call.target {
        case .local(let model): return try await local(call, model: model, request: request, body: buffer, context: context)
        case .deployment(let gateway): return try await proxied(call, gateway: gateway, request: request, body: buffer, context: context)
        }
    }

    /// Embeds with the local model: the tokens are counted first, so the price is known and held exactly.
    private func local(_ call: Call, model: EmbeddingModel, request: Request, body: ByteBuffer, context: Context) async throws -> Response {
        let tokens = call.texts.map(model.tokens)
        let count = tokens.reduce(0) { $0 + $1.count }
        let price = pricePer1K.multiplied(by: Int64(count))?.thousandthRoundedUp ?? Credits(microcredits: .max / 1000)
        let cost = Billing.Cost<[[Float]]>(held: price) { vectors, _ in
            (price, ResponseContent(json: Self.render(vectors, model: model.name, tokens: count, base64: call.base64)))
        }
        return try await pipeline.charge(cost, model: model.name, request: request, body: body, context: context) {
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

    /// Embeds with an LLM deployment's providers: held at one token per byte of text (and 8 per
    /// text), settled at the tokens the provider reports (the hold when it reports none).
    private func proxied(_ call: Call, gateway: LLMGateway, request: Request, body: ByteBuffer, context: Context) async throws -> Response {
        let deployment = gateway.configuration.deployment
        let bound = call.texts.reduce(0) { $0 + $1.utf8.count + 8 }
        let estimate = TokenUsage(promptTokens: bound, completionTokens: 0)
        let spend = tokenLimits.spender(context: context)
        let cost = Billing.Cost<EmbeddingResponse>(held: gateway.cost(estimate)) { response, _ in
            let tokens = response.promptTokens ?? bound
            return (
                gateway.cost(TokenUsage(promptTokens: tokens, completionTokens: 0)),
                ResponseContent(json: Self.render(response.vectors, model: deployment, tokens: tokens, base64: call.base64))
            )
        }
        return try await pipeline.charge(
            cost, model: deployment, request: request, body: body, context: context,
            limits: { try await tokenLimits.check(context: context) }
        ) {
            let response = try await gateway.embed(EmbeddingRequest(texts: call.texts, options: call.options), logger: context.logger)
            let tokens = TokenUsage(promptTokens: response.promptTokens ?? bound, completionTokens: 0)
            gateway.recordTokens(tokens, provider: response.provider)
            await spend(tokens)
            return response
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
