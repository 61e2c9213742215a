import CortexCore
import Foundation

/// An OpenAI-compatible server: OpenAI itself, vLLM, llama.cpp's server.
/// `POST /v1/chat/completions`, `POST /v1/completions` (prompts), `GET /v1/models`.
public struct OpenAICompatibleProvider: LLMProvider {
    public let name: String
    public let model: String
    let http: ProviderHTTP

    /// A provider at `baseURL` (e.g. `http://127.0.0.1:8080`, without `/v1`); `apiKey` is sent as
    /// a bearer token.
    public init(name: String = "openai", baseURL: String, model: String, apiKey: String? = nil, timeouts: ProviderTimeouts = .init()) {
        self.name = name
        self.model = model
        self.http = ProviderHTTP(baseURL: baseURL, headers: apiKey.map { [("Authorization", "Bearer \($0)")] } ?? [], timeouts: timeouts)
    }

    func body(_ request: ChatRequest, stream: Bool) -> String {
        var json = JSONWriter(capacity: 256)
        json.beginObject()
        request.writeHead(to: &json, model: model, stream: stream)
        if stream {
            json.key("stream_options")
            json.beginObject()
            json.member("include_usage", true)
            json.endObject()
        }
        request.writeSampling(to: &json, maxTokensKey: "max_tokens")
        json.endObject()
        return json.text
    }

    public func streamChat(_ request: ChatRequest) async throws(ProviderError) -> ChatDeltaStream {
        try await http.stream(Self.path(request), body: body(request, stream: true)) { DeltaStreamDecoder.openAI }
    }

    public func chat(_ request: ChatRequest) async throws(ProviderError) -> ChatResponse {
        let object = try await http.json(.POST, Self.path(request), body: body(request, stream: false))
        let choice = object["choices"]?.arrayValue?.first
        // A chat answers `message.content`, a completion `text`.
        guard let text = choice?["message"]?["content"]?.stringValue ?? choice?["text"]?.stringValue else {
            throw .invalidResponse(request.isPrompt ? "no choices[0].text" : "no choices[0].message.content")
        }
        return ChatResponse(
            text: text, finishReason: choice?["finish_reason"]?.stringValue, usage: TokenUsage(openAI: object), provider: name,
            model: object["model"]?.stringValue ?? model)
    }

    static func path(_ request: ChatRequest) -> String {
        request.isPrompt ? "/v1/completions" : "/v1/chat/completions"
    }

    public func listModels() async throws(ProviderError) -> [String] {
        let object = try await http.json(.GET, "/v1/models")
        guard let data = object["data"]?.arrayValue else { throw .invalidResponse("no data[] of models") }
        return data.compactMap { $0["id"]?.stringValue }
    }
}
