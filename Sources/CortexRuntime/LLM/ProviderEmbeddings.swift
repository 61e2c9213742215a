package import CortexCore
import Foundation

/// Texts to embed with an LLM deployment's provider (OpenAI's `/v1/embeddings`, Ollama's `/api/embed`).
public struct EmbeddingRequest: Sendable, Equatable {
    public var texts: [String]
    /// The client's other members (`dimensions`, `user`, ...): sent on to OpenAI-compatible
    /// providers as written; Ollama takes `dimensions` and refuses the rest (``OllamaProvider/checkEmbedding(_:)``).
    public var options: [ChatOption]

    public init(texts: [String], options: [ChatOption] = []) {
        self.texts = texts
        self.options = options
    }
}

/// A provider's embeddings, one per text in order.
public struct EmbeddingResponse: Sendable, Equatable {
    public var vectors: [[Float]]
    /// The input tokens the provider counted, when it said.
    public var promptTokens: Int?
    public var provider: String
}

extension ProviderChain {
    /// Embeds with the first provider that answers, as ``chat(_:from:)`` chats.
    public func embed(_ request: EmbeddingRequest, from start: Int = 0) async throws -> (response: EmbeddingResponse, failed: [Attempt]) {
        let (response, _, failed) = try await first(from: start) { provider throws(ProviderError) in try await provider.embed(request) }
        return (response, failed)
    }
}

extension OpenAICompatibleProvider {
    public func embed(_ request: EmbeddingRequest) async throws(ProviderError) -> EmbeddingResponse {
        var json = JSONWriter(capacity: 128 + request.texts.reduce(0) { $0 + $1.utf8.count + 4 })
        json.beginObject()
        json.member("model", model)
        json.key("input")
        json.beginArray()
        for text in request.texts { json.string(text) }
        json.endArray()
        // Numbers, whatever the client asked for: Cortex writes the answer in its format.
        json.member("encoding_format", "float")
        for option in request.options {
            json.key(option.name)
            json.raw(option.json)
        }
        json.endObject()
        let object = try await http.json(.POST, "/v1/embeddings", body: json.text)
        guard let data = object["data"]?.arrayValue else { throw .invalidResponse("no data[] of embeddings") }
        var vectors = [[Float]?](repeating: nil, count: request.texts.count)
        for (position, item) in data.enumerated() {
            let index = item["index"]?.intValue ?? position
            guard vectors.indices.contains(index), let vector = Self.floats(item["embedding"]) else {
                throw .invalidResponse("data[\(position)] is not an embedding of one of the \(request.texts.count) texts")
            }
            vectors[index] = vector
        }
        let all = vectors.compactMap { $0 }
        guard all.count == request.texts.count else { throw .invalidResponse("\(all.count) embeddings for \(request.texts.count) texts") }
        return EmbeddingResponse(vectors: all, promptTokens: object["usage"]?["prompt_tokens"]?.intValue, provider: name)
    }

    /// A JSON list of numbers as 32-bit floats.
    static func floats(_ value: JSONValue?) -> [Float]? {
        guard let items = value?.arrayValue, !items.isEmpty else { return nil }
        var floats: [Float] = []
        floats.reserveCapacity(items.count)
        for item in items {
            guard case .number(let number) = item else { return nil }
            floats.append(Float(number))
        }
        return floats
    }
}

extension OllamaProvider {
    /// Checks that Ollama's `/api/embed` can carry the request's members: `dimensions` only.
    ///
    /// - Throws: ``Unsupported`` naming the first it cannot.
    public static func checkEmbedding(_ request: EmbeddingRequest) throws(Unsupported) {
        for option in request.options where option.value != .null {
            guard option.name == "dimensions" else {
                throw Unsupported(field: option.name, reason: "Ollama's /api/embed has no equivalent, so it cannot be honoured")
            }
            guard option.value.intValue.map({ $0 > 0 }) == true else {
                throw Unsupported(field: "dimensions", reason: "it must be a positive integer")
            }
        }
    }

    public func embed(_ request: EmbeddingRequest) async throws(ProviderError) -> EmbeddingResponse {
        do { try Self.checkEmbedding(request) } catch { throw .rejected(status: 400, message: "'\(error.field)': \(error.reason)") }
        var json = JSONWriter(capacity: 128 + request.texts.reduce(0) { $0 + $1.utf8.count + 4 })
        json.beginObject()
        json.member("model", model)
        json.key("input")
        json.beginArray()
        for text in request.texts { json.string(text) }
        json.endArray()
        for option in request.options where option.value != .null {
            json.key(option.name)
            json.raw(option.json)
        }
        json.endObject()
        let object = try await http.json(.POST, "/api/embed", body: json.text)
        guard let items = object["embeddings"]?.arrayValue else { throw .invalidResponse("no embeddings[]") }
        let vectors = items.compactMap { OpenAICompatibleProvider.floats($0) }
        guard vectors.count == request.texts.count, vectors.count == items.count else {
            throw .invalidResponse("\(items.count) embeddings for \(request.texts.count) texts")
        }
        return EmbeddingResponse(vectors: vectors, promptTokens: object["prompt_eval_count"]?.intValue, provider: name)
    }
}
