import CortexCore
import Foundation

/// An Ollama server: `POST /api/chat`, `POST /api/generate` (prompts), `GET /api/tags`.
///
/// OpenAI's request members go under Ollama's names (``mapped(_:)``); one Ollama has no way to
/// honour is refused before the request is sent, never dropped.
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

    /// A member of the client's request that Ollama cannot carry: its path, and why.
    public struct Unsupported: Error, Sendable, Equatable {
        public var field: String
        public var reason: String
    }

    /// A request's members in Ollama's places: beside the messages (`tools`, `format`,
    /// `suffix`), and under `options` (`stop`, `top_p`, `seed`, ...), as JSON text.
    struct Members {
        var top: [(name: String, json: String)] = []
        var options: [(name: String, json: String)] = []
        /// `tool_choice: "none"`: the tools are not sent.
        var withoutTools = false
    }

    /// Where each of OpenAI's members goes on Ollama.
    ///
    /// - Throws: ``Unsupported`` for a member (or a value) Ollama cannot honour.
    static func mapped(_ request: ChatRequest) throws(Unsupported) -> Members {
        var members = Members()
        var tools: String?
        for option in request.options where option.value != .null {
            let value = option.value
            switch option.name {
            case "tools" where !request.isPrompt:
                tools = option.json
            case "tool_choice" where !request.isPrompt:
                switch value.stringValue {
                case "auto": break
                case "none": members.withoutTools = true
                default:
                    throw Unsupported(
                        field: "tool_choice", reason: "Ollama chooses among the tools itself: only 'auto' and 'none' can be honoured")
                }
            case "parallel_tool_calls" where !request.isPrompt:
                guard value == .bool(true) else {
                    throw Unsupported(
                        field: "parallel_tool_calls", reason: "Ollama may call several tools at once; only true can be honoured")
                }
            case "response_format" where !request.isPrompt:
                switch value["type"]?.stringValue {
                case "text": break
                case "json_object": members.top.append(("format", #""json""#))
                case "json_schema":
                    guard let schema = value["json_schema"]?["schema"], case .object = schema else {
                        throw Unsupported(field: "response_format.json_schema.schema", reason: "a JSON schema object is required")
                    }
                    members.top.append(("format", JSONWriter.text(of: schema)))
                default:
                    throw Unsupported(field: "response_format", reason: "its type must be 'text', 'json_object' or 'json_schema'")
                }
            case "stop":
                switch value {
                case .string(let stop): members.options.append(("stop", JSONWriter.text(of: .array([.string(stop)]))))
                case .array(let stops) where stops.allSatisfy({ $0.stringValue != nil }): members.options.append(("stop", option.json))
                default: throw Unsupported(field: "stop", reason: "it must be a string or a list of strings")
                }
            case "top_p", "seed", "presence_penalty", "frequency_penalty":
                guard case .number = value else { throw Unsupported(field: option.name, reason: "it must be a number") }
                members.options.append((option.name, option.json))
            case "suffix" where request.isPrompt:
                guard case .string = value else { throw Unsupported(field: "suffix", reason: "it must be a string") }
                members.top.append(("suffix", option.json))
            case "logprobs" where value == .bool(false):
                break
            default:
                throw Unsupported(field: option.name, reason: "Ollama has no equivalent, so it cannot be honoured")
            }
        }
        if let tools, !members.withoutTools { members.top.append(("tools", tools)) }
        if case .messages(let messages) = request.input {
            for (index, message) in messages.enumerated() {
                if let other = message.otherMembers.first {
                    throw Unsupported(field: "messages[\(index)].\(other)", reason: "Ollama's messages have no such member")
                }
                for (callIndex, call) in message.toolCalls.enumerated() {
                    guard let arguments = try? JSONParser.parse(Array(call.arguments.utf8)), case .object = arguments else {
                        throw Unsupported(
                            field: "messages[\(index)].tool_calls[\(callIndex)].function.arguments",
                            reason: "Ollama takes the arguments as a JSON object; this is not one")
                    }
                }
            }
        }
        return members
    }

    /// Checks that every member of `request` can go to Ollama.
    ///
    /// - Throws: ``Unsupported`` naming the first that cannot.
    public static func check(_ request: ChatRequest) throws(Unsupported) {
        _ = try mapped(request)
    }

    func body(_ request: ChatRequest, stream: Bool) throws(ProviderError) -> String {
        let members: Members
        do { members = try Self.mapped(request) } catch { throw .rejected(status: 400, message: "'\(error.field)': \(error.reason)") }
        var json = JSONWriter(capacity: 256)
        json.beginObject()
        request.writeHead(to: &json, model: model, stream: stream)
        switch request.input {
        case .messages(let messages): Self.write(messages, to: &json)
        case .prompt(let prompt): json.member("prompt", prompt)
        }
        for member in members.top {
            json.key(member.name)
            json.raw(member.json)
        }
        json.key("options")
        json.beginObject()
        if let maxTokens = request.maxTokens { json.member("num_predict", maxTokens) }
        if let temperature = request.temperature { json.member("temperature", temperature) }
        for option in members.options {
            json.key(option.name)
            json.raw(option.json)
        }
        json.endObject()
        json.endObject()
        return json.text
    }

    /// Messages in Ollama's shape: an assistant's tool calls with their arguments as objects, a
    /// tool's answer with the name of the tool it answers (Ollama matches by name, not id).
    static func write(_ messages: [ChatMessage], to json: inout JSONWriter) {
        var toolNames: [String: String] = [:]
        json.key("messages")
        json.beginArray()
        for message in messages {
            json.beginObject()
            json.member("role", message.role)
            json.member("content", message.content)
            if !message.toolCalls.isEmpty {
                json.key("tool_calls")
                json.beginArray()
                for call in message.toolCalls {
                    toolNames[call.id] = call.name
                    json.beginObject()
                    json.key("function")
                    json.beginObject()
                    json.member("name", call.name)
                    json.key("arguments")
                    json.raw(call.arguments)
                    json.endObject()
                    json.endObject()
                }
                json.endArray()
            }
            if let id = message.toolCallID, let name = toolNames[id] { json.member("tool_name", name) }
            json.endObject()
        }
        json.endArray()
    }

    public func streamChat(_ request: ChatRequest) async throws(ProviderError) -> ChatDeltaStream {
        try await http.stream(Self.path(request), body: body(request, stream: true)) { DeltaStreamDecoder.ollama }
    }

    public func chat(_ request: ChatRequest) async throws(ProviderError) -> ChatResponse {
        let object = try await http.json(.POST, Self.path(request), body: body(request, stream: false))
        guard let text = StreamChunk.ollamaText(object) else {
            throw .invalidResponse(request.isPrompt ? "no response" : "no message.content")
        }
        var response = ChatResponse(
            text: text, finishReason: object["done_reason"]?.stringValue, usage: TokenUsage(ollama: object), provider: name,
            model: object["model"]?.stringValue ?? model)
        response.toolCalls = ToolCall.ollama(object["message"]?["tool_calls"])
        // Ollama says `stop` when the model called tools; OpenAI's clients look for `tool_calls`.
        if !response.toolCalls.isEmpty, response.finishReason == nil || response.finishReason == "stop" {
            response.finishReason = "tool_calls"
        }
        return response
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
