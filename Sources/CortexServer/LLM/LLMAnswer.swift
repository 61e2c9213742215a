import CortexCore
import CortexRuntime
import NIOCore

/// Writes the answers of the LLM routes: whole answers, and the events of a stream, in each
/// route's shape (OpenAI's `chat.completion` and `text_completion` objects and chunks, or
/// Cortex's own for `/generate` and `/chat`).
struct LLMAnswer: Sendable {
    let route: LLMRoute
    /// `chatcmpl-<request id>` or `cmpl-<request id>`.
    let id: String
    /// Unix seconds.
    let created: Int
    /// The deployment's name, reported as `model`.
    let model: String

    init(route: LLMRoute, requestID: String, created: Int, model: String) {
        self.route = route
        self.id = (route == .completions ? "cmpl-" : "chatcmpl-") + requestID
        self.created = created
        self.model = model
    }

    /// What a finished request reports besides its text.
    struct Summary: Sendable {
        var finishReason: String?
        /// Tokens billed: the provider's usage, or the held estimate when it reported none.
        var tokens: TokenUsage
        /// Whether the provider reported its usage.
        var usageReported: Bool
        var provider: String
        var path: String
        /// Credits charged, when billed.
        var charged: Credits?
    }

    /// A whole answer's JSON. OpenAI's routes carry what the provider said besides the text: an
    /// OpenAI-compatible provider's whole `message` (tool calls, refusal), Ollama's tool calls,
    /// `logprobs` and `system_fingerprint`.
    func whole(_ response: ChatResponse, summary: Summary) -> String {
        let text = response.text
        var json = JSONWriter(capacity: 256 + text.utf8.count + (response.message?.utf8.count ?? 0))
        json.beginObject()
        switch route {
        case .chatCompletions, .completions:
            header(&json, object: route == .completions ? "text_completion" : "chat.completion")
            if let fingerprint = response.systemFingerprint { json.member("system_fingerprint", fingerprint) }
            json.key("choices")
            json.beginArray()
            json.beginObject()
            json.member("index", 0)
            if route == .completions {
                json.member("text", text)
            } else if let message = response.message {
                json.key("message")
                json.raw(message)
            } else {
                json.key("message")
                json.beginObject()
                json.member("role", "assistant")
                if response.toolCalls.isEmpty {
                    json.member("content", text)
                } else {
                    json.key("content")
                    if text.isEmpty { json.null() } else { json.string(text) }
                    json.key("tool_calls")
                    ToolCall.write(response.toolCalls, to: &json, streamed: false)
                }
                json.endObject()
            }
            json.key("logprobs")
            if let logprobs = response.logprobs { json.raw(logprobs) } else { json.null() }
            finishReason(&json, summary.finishReason ?? "stop")
            json.endObject()
            json.endArray()
            usage(&json, summary.tokens)
        case .generate, .chat:
            if route == .chat {
                json.member("reply", text)
            }
            json.member("text", text)
            summaryMembers(&json, summary)
        }
        json.endObject()
        return json.text
    }

    /// The first event of a stream (OpenAI's chat stream opens with the assistant's role).
    func start() -> ByteBuffer? {
        guard route == .chatCompletions else { return nil }
        return event { json in
            chunk(&json) { json in
                json.key("delta")
                json.beginObject()
                json.member("role", "assistant")
                json.member("content", "")
                json.endObject()
            }
        }
    }

    /// One piece of the answer: its text and, on OpenAI's chat route, what else the provider's
    /// delta carried (tool calls), its `logprobs` and `system_fingerprint`.
    func delta(_ delta: ChatDelta) -> ByteBuffer {
        let text = delta.text
        return event { json in
            switch route {
            case .chatCompletions:
                chunk(&json, fingerprint: delta.systemFingerprint, logprobs: delta.logprobs) { json in
                    json.key("delta")
                    json.beginObject()
                    if let members = delta.members {
                        // A delta of tool calls has no content.
                        json.key("content")
                        if text.isEmpty { json.null() } else { json.string(text) }
                        json.raw(members)
                    } else {
                        json.member("content", text)
                    }
                    json.endObject()
                }
            case .completions:
                chunk(&json, fingerprint: delta.systemFingerprint, logprobs: delta.logprobs) { json in json.member("text", text) }
            case .generate, .chat:
                json.beginObject()
                json.member("text", text)
                json.endObject()
            }
        }
    }

    /// The events that end a complete stream: the finish reason, the usage (OpenAI: when asked
    /// for with `stream_options.include_usage`), and OpenAI's `[DONE]`.
    func end(_ summary: Summary, includeUsage: Bool) -> ByteBuffer {
        switch route {
        case .chatCompletions, .completions:
            var buffer = event { json in
                chunk(&json, finishReason: summary.finishReason ?? "stop") { json in
                    if route == .completions {
                        json.member("text", "")
                    } else {
                        json.key("delta")
                        json.beginObject()
                        json.endObject()
                    }
                }
            }
            if includeUsage {
                var usageEvent = event { json in
                    json.beginObject()
                    header(&json, object: route == .completions ? "text_completion" : "chat.completion.chunk")
                    json.key("choices")
                    json.beginArray()
                    json.endArray()
                    usage(&json, summary.tokens)
                    json.endObject()
                }
                buffer.writeBuffer(&usageEvent)
            }
            buffer.writeString("data: [DONE]\n\n")
            return buffer
        case .generate, .chat:
            return event { json in
                json.beginObject()
                json.member("done", true)
                summaryMembers(&json, summary)
                json.endObject()
            }
        }
    }

    /// The event that ends a stream cut by the provider (or by billing): an error, no `[DONE]`,
    /// so a client cannot take a cut answer for a complete one.
    func error(code: String, message: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        if !route.isOpenAI { buffer.writeString("event: error\n") }
        var json = JSONWriter(capacity: 128)
        json.beginObject()
        json.key("error")
        if route.isOpenAI {
            json.beginObject()
            json.member("message", message)
            json.member("type", "server_error")
            json.member("code", code)
            json.endObject()
        } else {
            json.string(message)
            json.member("code", code)
        }
        json.endObject()
        buffer.writeString("data: \(json.text)\n\n")
        return buffer
    }

    private func event(_ write: (inout JSONWriter) -> Void) -> ByteBuffer {
        var json = JSONWriter(capacity: 160)
        write(&json)
        return ByteBuffer(string: "data: \(json.text)\n\n")
    }

    private func header(_ json: inout JSONWriter, object: String) {
        json.member("id", id)
        json.member("object", object)
        json.member("created", created)
        json.member("model", model)
    }

    /// An OpenAI chunk with one choice; `body` writes the choice's `delta` or `text`.
    private func chunk(
        _ json: inout JSONWriter, finishReason reason: String? = nil, fingerprint: String? = nil, logprobs: String? = nil,
        _ body: (inout JSONWriter) -> Void
    ) {
        json.beginObject()
        header(&json, object: route == .completions ? "text_completion" : "chat.completion.chunk")
        if let fingerprint { json.member("system_fingerprint", fingerprint) }
        json.key("choices")
        json.beginArray()
        json.beginObject()
        json.member("index", 0)
        body(&json)
        json.key("logprobs")
        if let logprobs { json.raw(logprobs) } else { json.null() }
        finishReason(&json, reason)
        json.endObject()
        json.endArray()
        json.endObject()
    }

    private func finishReason(_ json: inout JSONWriter, _ reason: String?) {
        json.key("finish_reason")
        if let reason { json.string(reason) } else { json.null() }
    }

    private func usage(_ json: inout JSONWriter, _ tokens: TokenUsage) {
        json.key("usage")
        json.beginObject()
        json.member("prompt_tokens", tokens.promptTokens)
        json.member("completion_tokens", tokens.completionTokens)
        json.member("total_tokens", tokens.promptTokens + tokens.completionTokens)
        json.endObject()
    }

    private func summaryMembers(_ json: inout JSONWriter, _ summary: Summary) {
        json.member("model", model)
        json.member("provider", summary.provider)
        json.member("path", summary.path)
        finishReason(&json, summary.finishReason)
        usage(&json, summary.tokens)
        json.member("usage_reported", summary.usageReported)
        if let charged = summary.charged {
            json.key("credits_charged")
            json.raw(charged.description)
        }
    }
}
