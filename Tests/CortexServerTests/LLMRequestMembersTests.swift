import CortexCore
import CortexRuntime
import NIOCore
import Testing

@testable import CortexRuntime
@testable import CortexServer

/// The members of an OpenAI request that Cortex does not own: sent on unchanged to
/// OpenAI-compatible providers, mapped to Ollama's names, or refused when Ollama cannot honour
/// them; and the prompt bound that holds for them. No server: the request as read and the bodies
/// the providers would send.
@Suite("LLM request members: passed on, mapped or refused")
struct LLMRequestMembersTests {
    static func configuration(_ kinds: [CortexConfiguration.LLM.Kind]) -> CortexConfiguration.LLM {
        var configuration = CortexConfiguration.LLM()
        configuration.deployment = "assistant"
        configuration.setProviders(kinds.enumerated().map { .init(kind: $1, url: "http://127.0.0.1:\(9000 + $0)", model: "m") })
        return configuration
    }

    static func call(_ body: String, _ kinds: [CortexConfiguration.LLM.Kind], route: LLMRoute = .chatCompletions) throws(APIError)
        -> LLMCall
    {
        let (value, texts) = try JSONValue.parseKeepingMemberText(ByteBuffer(string: body))
        return try LLMCall(route: route, body: value, memberText: texts, configuration: configuration(kinds))
    }

    static let toolConversation = #"""
        {"model":"assistant","messages":[{"role":"user","content":"Weather?"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
        {"role":"tool","tool_call_id":"call_9","content":"sunny"}],
        "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],
        "seed": 9007199254740993, "stop":"\n", "top_p":0.5, "max_completion_tokens":20}
        """#

    @Test("to an OpenAI-compatible provider: the client's messages and members as written, Cortex's model, stream and token bound")
    func openAIBody() throws {
        let call = try Self.call(Self.toolConversation, [.openai])
        #expect(call.request.options.map(\.name) == ["tools", "seed", "stop", "top_p"])
        let body = OpenAICompatibleProvider(baseURL: "http://127.0.0.1:1", model: "gpt-x").body(call.request, stream: true)
        #expect(body.hasPrefix(#"{"model":"gpt-x","stream":true,"messages":[{"role":"user","content":"Weather?"},"#), "\(body)")
        #expect(body.contains(#""tool_call_id":"call_9""#) && body.contains(#""arguments":"{\"city\":\"Paris\"}""#))
        #expect(
            body.hasSuffix(
                #""stream_options":{"include_usage":true},"max_completion_tokens":20,"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],"seed":9007199254740993,"stop":"\n","top_p":0.5}"#
            ), "\(body)")
    }

    @Test("to Ollama: tools and options under Ollama's names, arguments as objects, a tool's answer by the tool's name")
    func ollamaBody() throws {
        let call = try Self.call(Self.toolConversation, [.ollama])
        let body = try OllamaProvider(baseURL: "http://127.0.0.1:1", model: "llama").body(call.request, stream: false)
        #expect(
            body.contains(
                #"{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]}"#),
            "\(body)")
        #expect(body.contains(#"{"role":"tool","content":"sunny","tool_name":"get_weather"}"#), "\(body)")
        #expect(body.contains(#""tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]"#))
        #expect(body.hasSuffix(#""options":{"num_predict":20,"seed":9007199254740993,"stop":["\n"],"top_p":0.5}}"#), "\(body)")
        // JSON mode and schemas are Ollama's `format`; tool_choice none sends no tools.
        let json = try Self.call(
            #"{"model":"assistant","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}"#, [.ollama])
        #expect(
            try OllamaProvider(baseURL: "http://127.0.0.1:1", model: "l").body(json.request, stream: false).contains(#""format":"json""#))
        let schema = try Self.call(
            #"{"model":"assistant","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object"}}}}"#,
            [.ollama])
        #expect(
            try OllamaProvider(baseURL: "http://127.0.0.1:1", model: "l").body(schema.request, stream: false).contains(
                #""format":{"type":"object"}"#))
        let none = try Self.call(
            #"{"model":"assistant","messages":[{"role":"user","content":"x"}],"tools":[],"tool_choice":"none"}"#, [.ollama])
        #expect(try !OllamaProvider(baseURL: "http://127.0.0.1:1", model: "l").body(none.request, stream: false).contains("tools"))
    }

    @Test(
        "what Ollama cannot honour is a 400 naming the field when the deployment has an Ollama provider, and passes when it has none",
        arguments: [
            (#""logit_bias":{"1":-100}"#, "logit_bias"), (#""user":"u7""#, "user"), (#""logprobs":true"#, "logprobs"),
            (#""tool_choice":"required""#, "tool_choice"), (#""parallel_tool_calls":false"#, "parallel_tool_calls"),
            (#""response_format":{"type":"xml"}"#, "response_format"), (#""stop":[1]"#, "stop"), (#""top_p":"high""#, "top_p"),
            (#""metadata":{"a":"b"}"#, "metadata"),
        ])
    func ollamaRefuses(member: String, field: String) throws {
        let body = #"{"model":"assistant","messages":[{"role":"user","content":"x"}],"# + member + "}"
        do {
            _ = try Self.call(body, [.openai, .ollama])
            Issue.record("\(field) should be refused: a fallback to Ollama would drop it")
        } catch {
            #expect(
                error.status == 400 && error.code == "unsupported_parameter" && error.message.hasPrefix("'\(field)"), "\(error.message)")
        }
        #expect(try Self.call(body, [.openai]).request.options.contains { $0.name == field })
    }

    @Test("a message member Ollama has none of, and arguments that are not a JSON object, are refused for Ollama")
    func ollamaMessages() throws {
        #expect(throws: APIError.self) {
            try Self.call(#"{"model":"assistant","messages":[{"role":"user","content":"x","name":"ann"}]}"#, [.ollama])
        }
        let badArguments =
            #"{"model":"assistant","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]},{"role":"user","content":"x"}]}"#
        do {
            _ = try Self.call(badArguments, [.ollama])
            Issue.record("arguments that are not an object cannot go to Ollama")
        } catch {
            #expect(error.message.hasPrefix("'messages[0].tool_calls[0].function.arguments'"), "\(error.message)")
        }
        // The LLM assistant's /chat takes role and content, as it always has: other members are not refused.
        let chat = try Self.call(#"{"messages":[{"role":"user","content":"x","name":"ann","id":7}]}"#, [.ollama], route: .chat)
        #expect(chat.request.options.isEmpty)
        // OpenAI-compatible providers get both as the client wrote them.
        #expect(try Self.call(badArguments, [.openai]).request.messagesJSON?.contains(#""arguments":"[1]""#) == true)
    }

    @Test("malformed tool messages are 400s naming the field; n and best_of other than 1 are refused")
    func malformed() {
        for (body, field) in [
            (#"{"model":"assistant","messages":[{"role":"tool","content":"x"}]}"#, "tool_call_id"),
            (
                #"{"model":"assistant","messages":[{"role":"assistant","content":null,"tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}]}"#,
                "id"
            ),
            (
                #"{"model":"assistant","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"web","function":{}}]}]}"#,
                "type"
            ),
            (#"{"model":"assistant","messages":[{"role":"user","content":null}]}"#, "content"),
            (#"{"model":"assistant","messages":[{"role":"user","content":"x"}],"best_of":3}"#, "best_of"),
        ] {
            #expect(throws: APIError.self, "\(field)") { try Self.call(body, [.openai]) }
        }
    }

    @Test("the prompt bound counts tools, tool calls and every member sent on, so the hold still covers the real count")
    func promptBound() throws {
        let plain = try Self.call(#"{"model":"assistant","messages":[{"role":"user","content":"Weather?"}]}"#, [.openai])
        let tools = try Self.call(Self.toolConversation, [.openai])
        let optionBytes = tools.request.options.reduce(0) { $0 + $1.name.utf8.count + $1.json.utf8.count }
        #expect(LLMGateway.promptTokenBound(plain.request) == 8 + "Weather?".utf8.count + "user".utf8.count + 8)
        #expect(LLMGateway.promptTokenBound(tools.request) > LLMGateway.promptTokenBound(plain.request) + optionBytes)
    }
}
