package import CortexCore
import Foundation

/// One message of a chat.
public struct ChatMessage: Sendable, Equatable {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    public var role: String
    /// The text (empty for an assistant's message that only calls tools).
    public var content: String
    /// An assistant's calls of the client's tools (OpenAI's `tool_calls`).
    public var toolCalls: [ToolCall]
    /// A `tool` message's answer: the id of the call it answers (OpenAI's `tool_call_id`).
    public var toolCallID: String?
    /// The names of the client's other members of the message (`name`, ...): an
    /// OpenAI-compatible provider gets them with the client's messages; Ollama has none.
    public var otherMembers: [String] = []

    public init(role: String, content: String, toolCalls: [ToolCall] = [], toolCallID: String? = nil) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
    }
}

/// A model's call of one of the client's tools (functions).
public struct ToolCall: Sendable, Equatable {
    public var id: String
    public var name: String
    /// The arguments as JSON text, as OpenAI carries them.
    public var arguments: String

    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// A member of a client's OpenAI request that Cortex does not itself own (`tools`, `stop`,
/// `response_format`, `seed`, ...): its name, its value, and its JSON text as the client wrote it.
public struct ChatOption: Sendable, Equatable {
    public var name: String
    package var value: JSONValue
    /// Sent on unchanged to OpenAI-compatible providers.
    public var json: String

    package init(name: String, value: JSONValue, json: String) {
        self.name = name
        self.value = value
        self.json = json
    }
}

/// What a client asks of an LLM: a chat, or a plain completion of a prompt.
public struct ChatRequest: Sendable, Equatable {
    /// The text the model continues.
    public enum Input: Sendable, Equatable {
        /// A conversation (Ollama's `/api/chat`, OpenAI's `/v1/chat/completions`).
        case messages([ChatMessage])
        /// A raw prompt, without a chat template (Ollama's `/api/generate`, OpenAI's `/v1/completions`).
        case prompt(String)
    }

    public var input: Input
    /// Most tokens to generate; `nil` leaves it to the provider.
    public var maxTokens: Int?
    /// The name the client gave `maxTokens` (OpenAI's newer `max_completion_tokens`, or
    /// `max_tokens`): an OpenAI-compatible provider gets the same.
    public var maxTokensName = "max_tokens"
    public var temperature: Double?
    /// The client's other members, in its order: sent on to OpenAI-compatible providers as
    /// written, mapped to Ollama's names (``OllamaProvider/mapped(_:)`` refuses what it cannot carry).
    public var options: [ChatOption] = []
    /// The client's `messages` as it wrote them (an OpenAI-compatible provider gets them
    /// unchanged, with every member Cortex does not read); `nil` for a request Cortex made.
    public var messagesJSON: String?

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

    /// Writes what every provider's body starts with: the model and whether to stream.
    func writeHead(to json: inout JSONWriter, model: String, stream: Bool) {
        json.member("model", model)
        json.member("stream", stream)
    }

    /// Whether this is a plain completion.
    var isPrompt: Bool {
        if case .prompt = input { return true }
        return false
    }

    /// The prompt's size in bytes, with every member that reaches the model's context (tool
    /// definitions and calls, schemas, names): no tokenizer makes more tokens than bytes. Each
    /// message adds 8 for its template, each other member of a message 64 (a `name` is shorter).
    public var promptBytes: Int {
        let options = options.reduce(0) { $0 + $1.name.utf8.count + $1.json.utf8.count + 8 }
        switch input {
        case .messages(let messages):
            return messages.reduce(8 + options) { total, message in
                total + message.content.utf8.count + message.role.utf8.count + 8 + 64 * message.otherMembers.count
                    + message.toolCalls.reduce(0) { $0 + $1.id.utf8.count + $1.name.utf8.count + $1.arguments.utf8.count + 16 }
            }
        case .prompt(let prompt):
            return prompt.utf8.count + 8 + options
        }
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
public struct ChatResponse: Sendable, Equatable {
    public var text: String
    /// `stop`, `length`, `tool_calls`, ... as the provider says.
    public var finishReason: String?
    /// `nil` when the provider reported none.
    public var usage: TokenUsage?
    /// The provider that answered, and its model.
    public var provider: String
    public var model: String
    /// The tools the model calls (Ollama's, with ids made here; an OpenAI-compatible provider's
    /// are in ``message``).
    public var toolCalls: [ToolCall] = []
    /// An OpenAI-compatible provider's whole `message` as JSON (`content`, `tool_calls`,
    /// `refusal`, ...), handed to the client as it came.
    public var message: String?
    /// The provider's `logprobs` of the choice, as JSON.
    public var logprobs: String?
    public var systemFingerprint: String?

    public init(text: String, finishReason: String?, usage: TokenUsage?, provider: String, model: String) {
        self.text = text
        self.finishReason = finishReason
        self.usage = usage
        self.provider = provider
        self.model = model
    }
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
    /// Embeds texts with the provider's embedding route.
    func embed(_ request: EmbeddingRequest) async throws(ProviderError) -> EmbeddingResponse
}

extension ToolCall {
    /// Writes calls as OpenAI's `tool_calls` array; a stream's deltas number them from `index`.
    package static func write(_ calls: [ToolCall], to json: inout JSONWriter, streamed: Bool, index: Int = 0) {
        json.beginArray()
        for (offset, call) in calls.enumerated() {
            json.beginObject()
            if streamed { json.member("index", index + offset) }
            json.member("id", call.id)
            json.member("type", "function")
            json.key("function")
            json.beginObject()
            json.member("name", call.name)
            json.member("arguments", call.arguments)
            json.endObject()
            json.endObject()
        }
        json.endArray()
    }

    /// Ollama's `message.tool_calls` (`{"function": {"name", "arguments": {...}}}`, the arguments an
    /// object), as OpenAI's, each with an id made here when Ollama gave none.
    static func ollama(_ value: JSONValue?) -> [ToolCall] {
        guard let calls = value?.arrayValue else { return [] }
        return calls.compactMap { call in
            guard let function = call["function"], let name = function["name"]?.stringValue else { return nil }
            let arguments = function["arguments"].map { JSONWriter.text(of: $0) } ?? "{}"
            return ToolCall(id: call["id"]?.stringValue ?? Self.newID(), name: name, arguments: arguments)
        }
    }

    /// `call_` and 24 random letters and digits, as OpenAI's ids look.
    static func newID() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        var generator = SystemRandomNumberGenerator()
        return "call_" + String((0..<24).map { _ in alphabet[Int(generator.next(upperBound: UInt(alphabet.count)))] })
    }
}
