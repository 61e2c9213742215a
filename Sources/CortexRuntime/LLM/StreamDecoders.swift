import CortexCore
import Foundation

/// A piece of a streamed answer.
public struct ChatDelta: Sendable, Equatable {
    /// Text generated since the last delta (may be empty).
    public var text: String
    /// Set on the last delta: `stop`, `length`, `tool_calls`, ...
    public var finishReason: String?
    /// Token counts, when the provider sends them (usually on the last delta).
    public var usage: TokenUsage?
    /// The delta's other members in OpenAI's shape, as JSON text to write after `content`
    /// (`"tool_calls":[...]`, `"refusal":...`); `nil` for a delta of text alone.
    public var members: String?
    /// The provider's `logprobs` of the delta, as JSON.
    public var logprobs: String?
    public var systemFingerprint: String?
    /// Ollama's tool calls, before the decoder numbers them into ``members``.
    var toolCalls: [ToolCall] = []

    public init(text: String, finishReason: String? = nil, usage: TokenUsage? = nil, members: String? = nil) {
        self.text = text
        self.finishReason = finishReason
        self.usage = usage
        self.members = members
    }

    /// Whether there is anything to send the client besides the finish reason and usage.
    public var carriesOutput: Bool { !text.isEmpty || members != nil || logprobs != nil }
}

/// Splits a byte stream into lines, whatever the chunk boundaries (`\n` or `\r\n`).
struct LineSplitter: Sendable {
    private var pending: [UInt8] = []
    /// Longest line kept; a longer one is an error of the upstream (8 MiB).
    static let maximumLine = 8 << 20

    /// The complete lines in `bytes` (and what was pending), without their terminators.
    mutating func feed(_ bytes: some Sequence<UInt8>) throws(ProviderError) -> [String] {
        var lines: [String] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
                lines.append(String(decoding: pending, as: UTF8.self))
                pending.removeAll(keepingCapacity: true)
            } else {
                pending.append(byte)
                guard pending.count <= Self.maximumLine else { throw .invalidResponse("a streamed line over 8 MiB") }
            }
        }
        return lines
    }

    /// The last line when the stream ended without a terminator.
    mutating func finish() -> String? {
        defer { pending.removeAll() }
        return pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self)
    }
}

/// Server-sent events (`text/event-stream`), as OpenAI-compatible servers stream: `data:` lines
/// (several join with `\n`), an empty line ends an event, `:` lines are comments.
struct ServerSentEventDecoder: Sendable {
    private var lines = LineSplitter()
    private var data: [String] = []

    /// The `data` of every event completed by `bytes`.
    mutating func feed(_ bytes: some Sequence<UInt8>) throws(ProviderError) -> [String] {
        var events: [String] = []
        for line in try lines.feed(bytes) {
            if let event = take(line) { events.append(event) }
        }
        return events
    }

    /// An event left open when the stream ended.
    mutating func finish() -> String? {
        if let line = lines.finish(), let event = take(line) { return event }
        defer { data.removeAll() }
        return data.isEmpty ? nil : data.joined(separator: "\n")
    }

    private mutating func take(_ line: String) -> String? {
        if line.isEmpty {
            defer { data.removeAll() }
            return data.isEmpty ? nil : data.joined(separator: "\n")
        }
        if line.hasPrefix(":") { return nil }
        if line.hasPrefix("data:") {
            var value = line.dropFirst(5)
            if value.first == " " { value = value.dropFirst() }
            data.append(String(value))
        }
        // `event:`, `id:`, `retry:` carry nothing a chat needs.
        return nil
    }
}

/// The chunks of a streamed chat in each provider's format.
enum StreamChunk {
    /// One OpenAI `chat.completion.chunk` (or completion chunk) event's data; `nil` for `[DONE]`.
    static func openAI(_ data: String) throws(ProviderError) -> ChatDelta? {
        guard data != "[DONE]" else { return nil }
        guard let object = parse(data), case .object = object else {
            throw .invalidResponse("a stream event that is not JSON: \(data.prefix(200))")
        }
        if let error = object["error"] {
            throw .upstream(status: 500, message: error["message"]?.stringValue ?? error.stringValue ?? "error event")
        }
        let choice = object["choices"]?.arrayValue?.first
        let delta = choice?["delta"]
        // A chat chunk carries `delta.content`, a completion chunk `text`.
        let text = delta?["content"]?.stringValue ?? choice?["text"]?.stringValue ?? ""
        var chatDelta = ChatDelta(text: text, finishReason: choice?["finish_reason"]?.stringValue, usage: TokenUsage(openAI: object))
        // What else the delta carries (tool calls, a refusal), as the provider wrote it.
        if case .object(let members) = delta, members.contains(where: { $0.key != "role" && $0.key != "content" && $0.value != .null }) {
            var json = JSONWriter()
            for member in members where member.key != "role" && member.key != "content" && member.value != .null {
                json.key(member.key)
                json.value(member.value)
            }
            chatDelta.members = json.text
        }
        if let logprobs = choice?["logprobs"], logprobs != .null { chatDelta.logprobs = JSONWriter.text(of: logprobs) }
        chatDelta.systemFingerprint = object["system_fingerprint"]?.stringValue
        return chatDelta
    }

    /// One line of Ollama's NDJSON stream (`{"message":{"content":...},"done":false}`).
    static func ollama(_ line: String) throws(ProviderError) -> ChatDelta? {
        guard !line.allSatisfy({ $0 == " " || $0 == "\t" }) else { return nil }
        guard let object = parse(line), case .object = object else {
            throw .invalidResponse("a stream line that is not JSON: \(line.prefix(200))")
        }
        if let error = object["error"]?.stringValue { throw .upstream(status: 500, message: error) }
        var delta = ChatDelta(text: ollamaText(object) ?? "")
        delta.toolCalls = ToolCall.ollama(object["message"]?["tool_calls"])
        guard object["done"]?.boolValue == true else { return delta }
        delta.finishReason = object["done_reason"]?.stringValue ?? "stop"
        delta.usage = TokenUsage(ollama: object)
        return delta
    }

    /// The text of an Ollama answer or stream line: a chat's `message.content`, a generation's `response`.
    static func ollamaText(_ object: JSONValue) -> String? {
        object["message"]?["content"]?.stringValue ?? object["response"]?.stringValue
    }

    private static func parse(_ text: String) -> JSONValue? {
        var text = text
        return text.withUTF8 { bytes in try? JSONParser.parse(UnsafeRawBufferPointer(bytes)) }
    }
}

extension TokenUsage {
    /// OpenAI's `usage` member of an answer or chunk, when it has both counts.
    init?(openAI object: JSONValue) {
        // A count the provider got wrong (negative) is no count: the estimate held is billed instead.
        guard let counts = object["usage"], let prompt = counts["prompt_tokens"]?.intValue,
            let completion = counts["completion_tokens"]?.intValue, prompt >= 0, completion >= 0
        else { return nil }
        self.init(promptTokens: prompt, completionTokens: completion)
    }

    /// Ollama's counts on a finished answer (`prompt_eval_count`, `eval_count`), when it has both.
    init?(ollama object: JSONValue) {
        guard let prompt = object["prompt_eval_count"]?.intValue, let completion = object["eval_count"]?.intValue,
            prompt >= 0, completion >= 0
        else {
            return nil
        }
        self.init(promptTokens: prompt, completionTokens: completion)
    }
}

/// Turns a provider's streamed bytes into deltas.
protocol ChatStreamDecoder: Sendable {
    mutating func feed(_ bytes: some Sequence<UInt8>) throws(ProviderError) -> [ChatDelta]
    mutating func finish() throws(ProviderError) -> [ChatDelta]
    /// Whether the stream has said it is complete (a finish reason, or the format's end marker):
    /// bytes that stop before that are a cut answer, however the connection ended.
    var ended: Bool { get }
    /// What the format ends with, for the message when it did not.
    var endMarker: String { get }
}

/// Cuts a byte stream into units (lines, server-sent events' data).
protocol StreamUnits: Sendable {
    mutating func feed(_ bytes: some Sequence<UInt8>) throws(ProviderError) -> [String]
    mutating func finish() -> String?
}

extension LineSplitter: StreamUnits {}
extension ServerSentEventDecoder: StreamUnits {}

/// A provider's stream: units cut from the bytes, each parsed into a delta (or nothing).
struct DeltaStreamDecoder<Units: StreamUnits>: ChatStreamDecoder {
    var units: Units
    let parse: @Sendable (String) throws(ProviderError) -> ChatDelta?
    /// A unit that ends the stream without being a delta (OpenAI's `[DONE]`).
    let endUnit: String?
    let endMarker: String
    private(set) var ended = false
    /// Tool calls seen so far (only Ollama's are counted: OpenAI's come numbered).
    private var toolCalls = 0

    init(units: Units, parse: @escaping @Sendable (String) throws(ProviderError) -> ChatDelta?, endUnit: String?, endMarker: String) {
        self.units = units
        self.parse = parse
        self.endUnit = endUnit
        self.endMarker = endMarker
    }

    mutating func feed(_ bytes: some Sequence<UInt8>) throws(ProviderError) -> [ChatDelta] {
        var deltas: [ChatDelta] = []
        for unit in try units.feed(bytes) {
            if let delta = try take(unit) { deltas.append(delta) }
        }
        return deltas
    }

    mutating func finish() throws(ProviderError) -> [ChatDelta] {
        guard let unit = units.finish(), let delta = try take(unit) else { return [] }
        return [delta]
    }

    private mutating func take(_ unit: String) throws(ProviderError) -> ChatDelta? {
        if unit == endUnit { ended = true }
        guard var delta = try parse(unit) else { return nil }
        if !delta.toolCalls.isEmpty {
            // Ollama's calls, numbered across the stream as OpenAI's deltas are.
            var json = JSONWriter()
            json.key("tool_calls")
            ToolCall.write(delta.toolCalls, to: &json, streamed: true, index: toolCalls)
            delta.members = json.text
            toolCalls += delta.toolCalls.count
            delta.toolCalls = []
        }
        // Ollama says `stop` after calling tools; OpenAI's clients look for `tool_calls`.
        if toolCalls > 0, delta.finishReason == "stop" { delta.finishReason = "tool_calls" }
        if delta.finishReason != nil { ended = true }
        return delta
    }
}

extension DeltaStreamDecoder where Units == ServerSentEventDecoder {
    /// OpenAI's `text/event-stream` of `chat.completion.chunk`s, ending with a finish reason and `[DONE]`.
    static var openAI: Self {
        Self(units: ServerSentEventDecoder(), parse: StreamChunk.openAI, endUnit: "[DONE]", endMarker: "a finish_reason or [DONE]")
    }
}

extension DeltaStreamDecoder where Units == LineSplitter {
    /// Ollama's NDJSON stream, ending with a `"done": true` line.
    static var ollama: Self { Self(units: LineSplitter(), parse: StreamChunk.ollama, endUnit: nil, endMarker: #""done": true"#) }
}
