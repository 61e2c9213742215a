import CortexCore
import CortexRuntime

/// The LLM routes, each with its request and answer shapes.
enum LLMRoute: String, Sendable {
    /// The inference platform's `POST /generate`: `{"prompt": ...}` in, `{"text": ...}` out.
    case generate = "/generate"
    /// The LLM assistant's `POST /chat`: `{"messages": [...]}` (or `{"message": "..."}`) in, `{"reply": ...}` out.
    case chat = "/chat"
    /// OpenAI's `POST /v1/chat/completions`.
    case chatCompletions = "/v1/chat/completions"
    /// OpenAI's `POST /v1/completions`.
    case completions = "/v1/completions"

    /// Whether answers and errors take OpenAI's shapes.
    var isOpenAI: Bool { self == .chatCompletions || self == .completions }
}

/// One request to the LLM, read from any route's body and checked before anything is held.
struct LLMCall: Sendable {
    /// Most messages one chat may carry.
    static let maximumMessages = 1000
    static let roles: Set<String> = ["system", "developer", "user", "assistant", "tool"]

    var route: LLMRoute
    var request: ChatRequest
    var stream: Bool
    /// OpenAI's `stream_options.include_usage`: a last chunk with the usage.
    var includeUsage: Bool

    /// The tokens generated at most.
    var maxTokens: Int { request.maxTokens ?? 0 }

    /// Members of an OpenAI request that Cortex reads itself; every other member is the client's
    /// option, sent on to the provider (``ChatRequest/options``).
    static let ownMembers: Set<String> = [
        "model", "messages", "prompt", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "n", "best_of",
    ]

    /// Members of a message that Cortex reads.
    static let messageMembers: Set<String> = ["role", "content", "tool_calls", "tool_call_id"]

    /// Reads a body, a JSON object already (`memberText`: the text of each of its members'
    /// values, in order), for the deployment `configuration` (chosen by ``LLMController`` from
    /// `model`).
    ///
    /// - Throws: ``APIError`` 400 naming the field: one that is malformed, or one that a
    ///   provider of the deployment (Ollama) cannot honour.
    init(route: LLMRoute, body: JSONValue, memberText: [String], configuration: CortexConfiguration.LLM) throws(APIError) {
        self.route = route
        if route.isOpenAI {
            // Each would multiply the tokens generated past what is held.
            for name in ["n", "best_of"] {
                if let count = body[name], count != .null, count != .number(1) {
                    throw APIError.invalidInput("'\(name)' must be 1: one choice per request")
                }
            }
        }
        let input: ChatRequest.Input
        var messagesJSON: String?
        switch route {
        case .generate, .completions:
            input = .prompt(try Self.prompt(body["prompt"], route: route))
        case .chat, .chatCompletions:
            if route == .chat, body["messages"] == nil, let message = body["message"] {
                input = .messages([ChatMessage(role: "user", content: try message.string(at: "message"))])
            } else {
                input = .messages(try Self.messages(body.required("messages", in: ""), route: route))
            }
        }
        let maxTokens = try Self.maxTokens(body, configuration: configuration)
        var temperature: Double?
        if let value = body["temperature"], value != .null {
            guard case .number(let number) = value, (0...2).contains(number) else {
                throw APIError.invalidJSON("'temperature' must be a number from 0 to 2")
            }
            temperature = number
        }
        stream = try Self.bool(body["stream"], at: "stream") ?? false
        includeUsage = try Self.bool(body["stream_options"]?["include_usage"], at: "stream_options.include_usage") ?? false
        var request = ChatRequest(input: input, maxTokens: maxTokens.count, temperature: temperature)
        request.maxTokensName = maxTokens.name
        if route.isOpenAI, case .object(let members) = body, members.count == memberText.count {
            for (member, text) in zip(members, memberText) {
                if member.key == "messages" { messagesJSON = text }
                guard !Self.ownMembers.contains(member.key) else { continue }
                request.options.append(ChatOption(name: member.key, value: member.value, json: text))
            }
            request.messagesJSON = messagesJSON
        }
        // A member a provider of the chain cannot carry is refused now, not dropped on a fallback.
        if configuration.providers.contains(where: { $0.kind == .ollama }) {
            do throws(OllamaProvider.Unsupported) {
                try OllamaProvider.check(request)
            } catch {
                throw APIError(
                    status: 400, code: "unsupported_parameter",
                    message:
                        "'\(error.field)' cannot be sent to deployment '\(configuration.deployment)', which has an Ollama provider: \(error.reason)"
                )
            }
        }
        self.request = request
    }

    private static func prompt(_ value: JSONValue?, route: LLMRoute) throws(APIError) -> String {
        guard let value else { throw APIError.invalidJSON("missing field 'prompt'") }
        // OpenAI accepts a list of prompts; one is all a request here may carry.
        if case .array(let items) = value {
            guard items.count == 1 else { throw APIError.invalidInput("'prompt' must be one string; got a list of \(items.count)") }
            return try nonEmpty(items[0].string(at: "prompt[0]"), at: "prompt")
        }
        return try nonEmpty(value.string(at: "prompt"), at: "prompt")
    }

    private static func messages(_ value: JSONValue, route: LLMRoute) throws(APIError) -> [ChatMessage] {
        let items = try value.array(at: "messages")
        guard !items.isEmpty, items.count <= maximumMessages else {
            throw APIError.invalidInput("'messages' must hold 1 to \(maximumMessages) messages; got \(items.count)")
        }
        var messages: [ChatMessage] = []
        for (index, item) in items.enumerated() {
            let path = "messages[\(index)]"
            _ = try item.object(at: path)
            let role = try item.required("role", in: path).string(at: path + ".role")
            guard roles.contains(role) else {
                throw APIError.invalidInput("'\(path).role' must be one of \(roles.sorted().joined(separator: ", ")); got '\(role)'")
            }
            var message = ChatMessage(role: role, content: "")
            // OpenAI's route sends the client's messages on whole; the LLM assistant's `/chat`
            // takes a message's role and content only, as it always has.
            if route == .chatCompletions {
                message.otherMembers = try item.object(at: path).compactMap { member in
                    Self.messageMembers.contains(member.key) || member.value == .null ? nil : member.key
                }
            }
            if role == "assistant", route == .chatCompletions, let calls = item["tool_calls"], calls != .null {
                message.toolCalls = try toolCalls(calls, at: path + ".tool_calls")
            }
            if role == "tool", route == .chatCompletions {
                message.toolCallID = try item.required("tool_call_id", in: path).string(at: path + ".tool_call_id")
            }
            // An assistant's message that only calls tools may have no content.
            let content = item["content"] ?? .null
            if content == .null, !message.toolCalls.isEmpty {
                message.content = ""
            } else {
                message.content = try text(of: item.required("content", in: path), at: path + ".content")
            }
            messages.append(message)
        }
        return messages
    }

    /// An assistant's `tool_calls`: `{"id", "type": "function", "function": {"name", "arguments"}}`.
    private static func toolCalls(_ value: JSONValue, at path: String) throws(APIError) -> [ToolCall] {
        var calls: [ToolCall] = []
        for (index, call) in try value.array(at: path).enumerated() {
            let callPath = "\(path)[\(index)]"
            _ = try call.object(at: callPath)
            let type = try call["type"]?.string(at: callPath + ".type") ?? "function"
            guard type == "function" else { throw APIError.invalidInput("'\(callPath).type' must be 'function'; got '\(type)'") }
            let function = try call.required("function", in: callPath)
            calls.append(
                ToolCall(
                    id: try call.required("id", in: callPath).string(at: callPath + ".id"),
                    name: try function.required("name", in: callPath + ".function").string(at: callPath + ".function.name"),
                    arguments: try function.required("arguments", in: callPath + ".function").string(at: callPath + ".function.arguments")))
        }
        return calls
    }

    /// A message's content: a string, or OpenAI's list of parts of which only `text` parts are taken.
    private static func text(of content: JSONValue, at path: String) throws(APIError) -> String {
        if case .string(let text) = content { return text }
        var text = ""
        for (index, part) in try content.array(at: path).enumerated() {
            let partPath = "\(path)[\(index)]"
            let type = try part.required("type", in: partPath).string(at: partPath + ".type")
            guard type == "text" else {
                throw APIError.invalidInput("'\(partPath).type' must be 'text'; '\(type)' parts are not supported")
            }
            text += try part.required("text", in: partPath).string(at: partPath + ".text")
        }
        return text
    }

    /// The tokens to generate at most, and the name the client gave them.
    private static func maxTokens(_ body: JSONValue, configuration: CortexConfiguration.LLM) throws(APIError) -> (
        count: Int, name: String
    ) {
        for name in ["max_completion_tokens", "max_tokens"] {
            guard let value = body[name], value != .null else { continue }
            guard case .number(let number) = value, let count = Int(exactly: number), (1...configuration.maxTokensLimit).contains(count)
            else {
                throw APIError.invalidInput("'\(name)' must be an integer from 1 to \(configuration.maxTokensLimit)")
            }
            return (count, name)
        }
        return (configuration.defaultMaxTokens, "max_tokens")
    }

    private static func bool(_ value: JSONValue?, at path: String) throws(APIError) -> Bool? {
        guard let value, value != .null else { return nil }
        return try value.bool(at: path)
    }

    private static func nonEmpty(_ text: String, at path: String) throws(APIError) -> String {
        guard !text.isEmpty else { throw APIError.invalidInput("'\(path)' must not be empty") }
        return text
    }
}
