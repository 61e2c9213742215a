import CortexCore
import Foundation

/// One message of a chat.
public struct ChatMessage: Sendable, Hashable, Codable {
    /// `system`, `user` or `assistant`.
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// What a client asks of an LLM: a chat, or a plain completion of a prompt.
public struct ChatRequest: Sendable, Hashable {
    /// The text the model continues.
    public enum Input: Sendable, Hashable {
        /// A conversation (Ollama's `/api/chat`, OpenAI's `/v1/chat/completions`).
        case messages([ChatMessage])
        /// A raw prompt, without a chat template (Ollama's `/api/generate`, OpenAI's `/v1/completions`).
        case prompt(String)
    }

    public var input: Input
    /// Most tokens to generate; `nil` leaves it to the provider.
    public var maxTokens: Int?
    public var temperature: Double?

    public init(messages: [ChatMessage], maxTokens: Int? = nil, temperature: Double? = nil) {
        self.init(input: .messages(messages), maxTokens: maxTokens, temperature: temperature)
    }

    public init(prompt: String, maxTokens: Int? = nil, temperature: Double? = nil) {
        self.init(input: .prompt(prompt), maxTokens: maxTokens, temperature: temperature)
    }

    public init(input: Input, maxTokens: Int?, temperature: Double?) {
        self.input = input
        self.maxTokens = maxTokens
        self.temperature = temperature
    }

    /// Writes what every provider's body starts with: the model, the input, and whether to stream.
    func writeHead(to json: inout JSONWriter, model: String, stream: Bool) {
        json.member("model", model)
        writeInput(to: &json)
        json.member("stream", stream)
    }

    /// Writes the sampling options: `max_tokens` under the provider's name for it, and `temperature`.
    func writeSampling(to json: inout JSONWriter, maxTokensKey: String) {
        if let maxTokens { json.member(maxTokensKey, maxTokens) }
        if let temperature { json.member("temperature", temperature) }
    }

    /// Writes the input as the member a provider expects: `messages` or `prompt`.
    private func writeInput(to json: inout JSONWriter) {
        switch input {
        case .messages(let messages):
            json.key("messages")
            json.beginArray()
            for message in messages {
                json.beginObject()
                json.member("role", message.role)
                json.member("content", message.content)
                json.endObject()
            }
            json.endArray()
        case .prompt(let prompt):
            json.member("prompt", prompt)
        }
    }

    /// Whether this is a plain completion.
    var isPrompt: Bool {
        if case .prompt = input { return true }
        return false
    }
}

/// Tokens a provider reports for one request.
public struct TokenUsage: Sendable, Hashable {
    public var promptTokens: Int
    public var completionTokens: Int

    public init(promptTokens: Int, completionTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }
}

/// A provider's answer.
public struct ChatResponse: Sendable, Hashable {
    public var text: String
    /// `stop`, `length`, ... as the provider says.
    public var finishReason: String?
    /// `nil` when the provider reported none.
    public var usage: TokenUsage?
    /// The provider that answered, and its model.
    public var provider: String
    public var model: String
}

/// Why a provider did not answer.
public enum ProviderError: Error, Sendable, Hashable, CustomStringConvertible {
    /// It could not be reached.
    case connection(String)
    /// It did not answer within a timeout.
    case timeout(String)
    /// It answered 5xx.
    case upstream(status: Int, message: String)
    /// It answered 429.
    case rateLimited(String)
    /// It answered something that is not its wire format.
    case invalidResponse(String)
    /// It refused the request itself (a 4xx other than 429): the client's fault, not the provider's.
    case rejected(status: Int, message: String)
    /// The circuit breaker is open: not attempted.
    case circuitOpen
    /// Its stream ended (the connection closed, or the body ended) before the format's end
    /// marker: OpenAI's `[DONE]` or a finish reason, Ollama's `"done": true`.
    case streamCut(String)

    /// Whether the next provider of a chain should be tried: faults of the provider, never the
    /// client's own 4xx.
    public var fallsBack: Bool {
        if case .rejected = self { return false }
        return true
    }

    /// The same error with `redactor`'s secrets taken out of what the provider said.
    func redacted(by redactor: SecretRedactor) -> ProviderError {
        guard !redactor.isEmpty else { return self }
        switch self {
        case .connection(let reason): return .connection(redactor.redact(reason))
        case .timeout(let what): return .timeout(redactor.redact(what))
        case .upstream(let status, let message): return .upstream(status: status, message: redactor.redact(message))
        case .rateLimited(let message): return .rateLimited(redactor.redact(message))
        case .invalidResponse(let reason): return .invalidResponse(redactor.redact(reason))
        case .rejected(let status, let message): return .rejected(status: status, message: redactor.redact(message))
        case .circuitOpen: return self
        case .streamCut(let what): return .streamCut(redactor.redact(what))
        }
    }

    public var description: String {
        switch self {
        case .connection(let reason): "unreachable: \(reason)"
        case .timeout(let what): "timed out (\(what))"
        case .upstream(let status, let message): "answered \(status): \(message)"
        case .rateLimited(let message): "rate limited (429): \(message)"
        case .invalidResponse(let reason): "answered in an unexpected format: \(reason)"
        case .rejected(let status, let message): "refused the request (\(status)): \(message)"
        case .circuitOpen: "circuit open after repeated failures"
        case .streamCut(let what): "ended the stream before its end (\(what))"
        }
    }
}

/// Timeouts of one provider.
public struct ProviderTimeouts: Sendable, Hashable {
    /// Opening the connection.
    public var connect: Duration
    /// From sending the request to the first byte of the answer (the first token when streaming).
    public var firstToken: Duration
    /// The whole request.
    public var total: Duration

    public init(connect: Duration = .seconds(2), firstToken: Duration = .seconds(30), total: Duration = .seconds(120)) {
        self.connect = connect
        self.firstToken = firstToken
        self.total = total
    }
}

/// An LLM server Cortex forwards chats to: Ollama or an OpenAI-compatible server.
public protocol LLMProvider: Sendable {
    /// A name for logs and metrics, e.g. `ollama` or `openai`.
    var name: String { get }
    /// The model asked for.
    var model: String { get }
    /// Sends a chat and waits for the whole answer.
    func chat(_ request: ChatRequest) async throws(ProviderError) -> ChatResponse
    /// Sends a chat and streams the answer: returns once the provider accepted it (a failure before
    /// that is thrown); the stream then yields deltas and ends with the provider's error if the
    /// answer is cut.
    func streamChat(_ request: ChatRequest) async throws(ProviderError) -> ChatDeltaStream
    /// The models the server has (to see whether `model` is present).
    func listModels() async throws(ProviderError) -> [String]
}
