import Testing

@testable import CortexRuntime

/// The streaming wire formats, fed in every possible split: OpenAI's server-sent events and
/// Ollama's NDJSON.
@Suite("LLM stream decoders")
struct StreamDecoderTests {
    static let openAIStream =
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
        + ": keep-alive\r\n\r\n"
        + "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n"
        + "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo ✓\"},\"finish_reason\":null}]}\r\n\r\n"
        + "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n"
        + "data: [DONE]\n\n"

    static let ollamaStream =
        "{\"model\":\"gemma3\",\"message\":{\"role\":\"assistant\",\"content\":\"Hal\"},\"done\":false}\n"
        + "{\"model\":\"gemma3\",\"message\":{\"role\":\"assistant\",\"content\":\"lo ✓\"},\"done\":false}\n"
        + "{\"model\":\"gemma3\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":5,\"eval_count\":2}\n"

    static func openAIDeltas(_ chunks: [ArraySlice<UInt8>]) throws -> [ChatDelta] {
        var decoder = ServerSentEventDecoder()
        var events: [String] = []
        for chunk in chunks { events += try decoder.feed(chunk) }
        if let last = decoder.finish() { events.append(last) }
        return try events.compactMap { try StreamChunk.openAI($0) }
    }

    static func ollamaDeltas(_ chunks: [ArraySlice<UInt8>]) throws -> [ChatDelta] {
        var lines = LineSplitter()
        var all: [String] = []
        for chunk in chunks { all += try lines.feed(chunk) }
        if let last = lines.finish() { all.append(last) }
        return try all.compactMap { try StreamChunk.ollama($0) }
    }

    /// The bytes cut at `size`-byte boundaries (1 cuts inside UTF-8 sequences too).
    static func chunks(_ text: String, size: Int) -> [ArraySlice<UInt8>] {
        let bytes = Array(text.utf8)
        return stride(from: 0, to: bytes.count, by: size).map { bytes[$0..<min($0 + size, bytes.count)] }
    }

    @Test("OpenAI server-sent events: text, finish reason and usage, whatever the chunk size", arguments: [1, 2, 7, 64, 100_000])
    func openAI(size: Int) throws {
        let deltas = try Self.openAIDeltas(Self.chunks(Self.openAIStream, size: size))
        #expect(deltas.map(\.text).joined() == "Hello ✓")
        #expect(deltas.last?.finishReason == "stop")
        #expect(deltas.last?.usage == TokenUsage(promptTokens: 7, completionTokens: 2))
        #expect(deltas.count == 4, "the comment and [DONE] are not deltas")
    }

    @Test("Ollama NDJSON: text, done reason and eval counts, whatever the chunk size", arguments: [1, 3, 50, 100_000])
    func ollama(size: Int) throws {
        let deltas = try Self.ollamaDeltas(Self.chunks(Self.ollamaStream, size: size))
        #expect(deltas.map(\.text).joined() == "Hallo ✓")
        #expect(deltas.last?.finishReason == "stop")
        #expect(deltas.last?.usage == TokenUsage(promptTokens: 5, completionTokens: 2))
        #expect(deltas.dropLast().allSatisfy { $0.finishReason == nil && $0.usage == nil })
    }

    @Test("multi-line data, a missing final blank line, error events and garbage")
    func edges() throws {
        var decoder = ServerSentEventDecoder()
        #expect(try decoder.feed(Array("event: x\ndata: a\ndata: b\nid: 1\n\n".utf8)) == ["a\nb"])
        #expect(try decoder.feed(Array("data: tail".utf8)).isEmpty)
        #expect(decoder.finish() == "tail")
        #expect(throws: ProviderError.upstream(status: 500, message: "model overloaded")) {
            try StreamChunk.openAI(#"{"error":{"message":"model overloaded"}}"#)
        }
        #expect(throws: ProviderError.self) { try StreamChunk.openAI("not json") }
        #expect(throws: ProviderError.upstream(status: 500, message: "out of memory")) {
            try StreamChunk.ollama(#"{"error":"out of memory"}"#)
        }
        #expect(try StreamChunk.ollama("   ") == nil)
        let done = try StreamChunk.ollama(#"{"done":true}"#)
        #expect(done?.finishReason == "stop" && done?.usage == nil, "a stream without counts reports no usage")
        var lines = LineSplitter()
        #expect(throws: ProviderError.self) { try lines.feed(Array(repeating: UInt8(ascii: "a"), count: LineSplitter.maximumLine + 1)) }
        // A provider's negative counts are no counts: the estimate held is billed instead.
        let negative = try StreamChunk.ollama(#"{"done":true,"prompt_eval_count":-5,"eval_count":3}"#)
        #expect(negative?.usage == nil)
        #expect(
            TokenUsage(openAI: .object([("usage", .object([("prompt_tokens", .number(4)), ("completion_tokens", .number(-1))]))])) == nil)
    }

    @Test("a stream has ended only once its format says so: a finish reason or [DONE]; Ollama's done")
    func endMarkers() throws {
        var openAI = DeltaStreamDecoder<ServerSentEventDecoder>.openAI
        _ = try openAI.feed(Array(#"data: {"choices":[{"delta":{"content":"a"},"finish_reason":null}]}\#n\#n"#.utf8))
        #expect(!openAI.ended, "tokens alone are not an end")
        _ = try openAI.feed(Array("data: [DONE]\n\n".utf8))
        #expect(openAI.ended)
        var reason = DeltaStreamDecoder<ServerSentEventDecoder>.openAI
        _ = try reason.feed(Array(#"data: {"choices":[{"delta":{},"finish_reason":"length"}]}\#n\#n"#.utf8))
        #expect(reason.ended, "a finish reason ends it even if [DONE] is lost")
        var ollama = DeltaStreamDecoder<LineSplitter>.ollama
        _ = try ollama.feed(Array(#"{"message":{"content":"a"},"done":false}\#n"#.utf8))
        #expect(!ollama.ended)
        _ = try ollama.feed(Array(#"{"done":true,"done_reason":"stop"}"#.utf8))
        #expect(!ollama.ended, "a line without its newline is not read yet")
        #expect(try ollama.finish().first?.finishReason == "stop")
        #expect(ollama.ended, "the last line, unterminated at the end of the body, still counts")
    }
}

@Suite("LLM stream decoders: tool calls")
struct ToolCallStreamTests {
    @Test("OpenAI: a delta's tool calls, refusal and logprobs are kept as the provider wrote them; role and content are not repeated")
    func openAIToolCalls() throws {
        let event =
            #"{"id":"c1","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},"logprobs":{"content":[]},"finish_reason":null}]}"#
        let delta = try #require(try StreamChunk.openAI(event))
        #expect(delta.text == "" && delta.carriesOutput)
        #expect(delta.members == #""tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]"#)
        #expect(delta.logprobs == #"{"content":[]}"# && delta.systemFingerprint == "fp_1")
        // A plain text delta carries nothing else, so the hot path writes only its text.
        let text = try #require(try StreamChunk.openAI(#"{"choices":[{"index":0,"delta":{"content":"hi"},"logprobs":null}]}"#))
        #expect(text.members == nil && text.logprobs == nil && text.text == "hi")
    }

    @Test("Ollama: tool calls become OpenAI's deltas, numbered across the stream, with ids; the finish reason becomes tool_calls")
    func ollamaToolCalls() throws {
        var decoder = DeltaStreamDecoder.ollama
        let lines =
            #"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"a","arguments":{"x":1}}}]},"done":false}"#
            + "\n"
            + #"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"b","arguments":{}}}]},"done":false}"# + "\n"
            + #"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":2}"# + "\n"
        let deltas = try decoder.feed(Array(lines.utf8))
        try #require(deltas.count == 3)
        let first = try #require(deltas[0].members)
        #expect(
            first.hasPrefix(#""tool_calls":[{"index":0,"id":"call_"#)
                && first.hasSuffix(#","type":"function","function":{"name":"a","arguments":"{\"x\":1}"}}]"#), "\(first)")
        #expect(deltas[1].members?.hasPrefix(#""tool_calls":[{"index":1,"#) == true, "\(deltas[1])")
        #expect(deltas[2].finishReason == "tool_calls" && decoder.ended)
        // Without tool calls, Ollama's `stop` stays `stop`.
        var plain = DeltaStreamDecoder.ollama
        let last = try plain.feed(Array((#"{"message":{"content":"x"},"done":true,"done_reason":"stop"}"# + "\n").utf8))
        #expect(last.first?.finishReason == "stop")
    }
}
