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

    /// The provider's body: the client's request as it wrote it (its messages and every member
    /// Cortex does not own), with Cortex's `model`, `stream`, the token bound and, when
    /// streaming, `stream_options.include_usage` (billing reads the usage).
    func body(_ request: ChatRequest, stream: Bool) -> String {
        var json = JSONWriter(capacity: 256 + (request.messagesJSON?.utf8.count ?? 0))
        json.beginObject()
        request.writeHead(to: &json, model: model, stream: stream)
        switch request.input {
        case .messages(let messages):
            json.key("messages")
            if let raw = request.messagesJSON { json.raw(raw) } else { Self.write(messages, to: &json) }
        case .prompt(let prompt):
            json.member("prompt", prompt)
        }
        if stream {
            json.key("stream_options")
            json.beginObject()
            json.member("include_usage", true)
            json.endObject()
        }
        if let maxTokens = request.maxTokens { json.member(request.maxTokensName, maxTokens) }
        if let temperature = request.temperature { json.member("temperature", temperature) }
        for option in request.options {
            json.key(option.name)
            json.raw(option.json)
        }
        json.endObject()
        return json.text
    }

    /// Messages Cortex made (no client's text to send on), in OpenAI's shape.
    static func write(_ messages: [ChatMessage], to json: inout JSONWriter) {
        json.beginArray()
        for message in messages {
            json.beginObject()
            json.member("role", message.role)
            json.member("content", message.content)
            if !message.toolCalls.isEmpty {
                json.key("tool_calls")
                ToolCall.write(message.toolCalls, to: &json, streamed: false)
            }
            if let id = message.toolCallID { json.member("tool_call_id", id) }
            json.endObject()
        }
        json.endArray()
    }

    public func streamChat(_ request: ChatRequest) async throws(ProviderError) -> ChatDeltaStream {
        try await http.stream(Self.path(request), body: body(request, stream: true)) { DeltaStreamDecoder.openAI }
    }

    public func chat(_ request: ChatRequest) async throws(ProviderError) -> ChatResponse {
        let object = try await http.json(.POST, Self.path(request), body: body(request, stream: false))
        let choice = object["choices"]?.arrayValue?.first
        let message = choice?["message"]
        // A chat answers `message.content` (`null` when it only calls tools), a completion `text`.
        let text: String
        if request.isPrompt {
            guard let prompt = choice?["text"]?.stringValue else { throw .invalidResponse("no choices[0].text") }
            text = prompt
        } else {
            guard let message, case .object = message, let content = message["content"], content.stringValue != nil || content == .null
            else { throw .invalidResponse("no choices[0].message.content") }
            text = content.stringValue ?? ""
        }
        var response = ChatResponse(
            text: text, finishReason: choice?["finish_reason"]?.stringValue, usage: TokenUsage(openAI: object), provider: name,
            model: object["model"]?.stringValue ?? model)
        // A message of more than its role and text (tool calls, a refusal) goes to the client whole.
        if !request.isPrompt, case .object(let members)? = message,
            members.contains(where: { $0.key != "role" && $0.key != "content" && $0.value != .null })
        {
            response.message = JSONWriter.text(of: .object(members))
        }
        if let logprobs = choice?["logprobs"], logprobs != .null { response.logprobs = JSONWriter.text(of: logprobs) }
        response.systemFingerprint = object["system_fingerprint"]?.stringValue
        return response
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
