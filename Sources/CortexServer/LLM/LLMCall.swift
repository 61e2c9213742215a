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

    /// Reads a body, a JSON object already, for the deployment `configuration` (chosen by
    /// ``LLMController`` from `model`).
    ///
    /// - Throws: ``APIError`` 400 naming the field.
    init(route: LLMRoute, body: JSONValue, configuration: CortexConfiguration.LLM) throws(APIError) {
        self.route = route
        if route.isOpenAI, let count = body["n"], count != .number(1) {
            throw APIError.invalidInput("'n' must be 1: one choice per request")
        }
        let input: ChatRequest.Input
        switch route {
        case .generate, .completions:
            input = .prompt(try Self.prompt(body["prompt"], route: route))
        case .chat, .chatCompletions:
            if route == .chat, body["messages"] == nil, let message = body["message"] {
                input = .messages([ChatMessage(role: "user", content: try message.string(at: "message"))])
            } else {
                input = .messages(try Self.messages(body.required("messages", in: "")))
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
        request = ChatRequest(input: input, maxTokens: maxTokens, temperature: temperature)
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

    private static func messages(_ value: JSONValue) throws(APIError) -> [ChatMessage] {
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
            let content = try item.required("content", in: path)
            messages.append(ChatMessage(role: role, content: try text(of: content, at: path + ".content")))
        }
        return messages
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

    private static func maxTokens(_ body: JSONValue, configuration: CortexConfiguration.LLM) throws(APIError) -> Int {
        for name in ["max_completion_tokens", "max_tokens"] {
            guard let value = body[name], value != .null else { continue }
            guard case .number(let number) = value, let count = Int(exactly: number), (1...configuration.maxTokensLimit).contains(count)
            else {
                throw APIError.invalidInput("'\(name)' must be an integer from 1 to \(configuration.maxTokensLimit)")
            }
            return count
        }
        return configuration.defaultMaxTokens
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
