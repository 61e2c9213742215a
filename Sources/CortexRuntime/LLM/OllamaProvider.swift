import CortexCore
import Foundation

/// An Ollama server: `POST /api/chat`, `POST /api/generate` (prompts), `GET /api/tags`.
public struct OllamaProvider: LLMProvider {
    public let name: String
    public let model: String
    let http: ProviderHTTP

    /// A provider at `baseURL`, e.g. `http://127.0.0.1:11434`.
    public init(name: String = "ollama", baseURL: String, model: String, timeouts: ProviderTimeouts = .init()) {
        self.name = name
        self.model = model
        self.http = ProviderHTTP(baseURL: baseURL, headers: [], timeouts: timeouts)
    }

    func body(_ request: ChatRequest, stream: Bool) -> String {
        var json = JSONWriter(capacity: 256)
        json.beginObject()
        request.writeHead(to: &json, model: model, stream: stream)
        json.key("options")
        json.beginObject()
        request.writeSampling(to: &json, maxTokensKey: "num_predict")
        json.endObject()
        json.endObject()
        return json.text
    }

    public func streamChat(_ request: ChatRequest) async throws(ProviderError) -> ChatDeltaStream {
        try await http.stream(Self.path(request), body: body(request, stream: true)) { DeltaStreamDecoder.ollama }
    }

    public func chat(_ request: ChatRequest) async throws(ProviderError) -> ChatResponse {
        let object = try await http.json(.POST, Self.path(request), body: body(request, stream: false))
        guard let text = StreamChunk.ollamaText(object) else {
            throw .invalidResponse(request.isPrompt ? "no response" : "no message.content")
        }
        return ChatResponse(
            text: text, finishReason: object["done_reason"]?.stringValue, usage: TokenUsage(ollama: object), provider: name,
            model: object["model"]?.stringValue ?? model)
    }

    static func path(_ request: ChatRequest) -> String {
        request.isPrompt ? "/api/generate" : "/api/chat"
    }

    public func listModels() async throws(ProviderError) -> [String] {
        let object = try await http.json(.GET, "/api/tags")
        guard let models = object["models"]?.arrayValue else { throw .invalidResponse("no models[]") }
        return models.compactMap { $0["name"]?.stringValue }
    }
}
