import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A stand-in for an LLM server on a loopback port, speaking the real wire formats of OpenAI's
/// chat completions (`/v1/chat/completions`, `/v1/models`) and Ollama (`/api/chat`, `/api/tags`).
/// Tests switch its behaviour while it runs, and read what it was sent.
final class FakeLLMServer: Sendable {
    enum Behaviour: Sendable {
        /// Answers `text` with usage counts (or none).
        case answer(String, usage: (prompt: Int, completion: Int)?)
        /// Answers this status with an error body in the format's shape.
        case fail(status: Int, message: String)
        /// Waits this long, then answers.
        case slow(Duration, String)
        /// Streams the first `words` words of `text`, then drops the connection once the test calls
        /// `releaseCut()` (after it has seen those words arrive, so none of them can be lost with
        /// the connection).
        case cut(String, words: Int)
        /// Streams the first `words` words of `text`, waits for `releaseCut()`, then sends a line
        /// that is not the wire format and ends: a stream broken mid-way whose words are surely
        /// delivered before the break (they travel ahead of it on the same connection).
        case broken(String, words: Int)
        /// Streams `words` words, one every `every` (a whole answer comes in as many pieces):
        /// an answer that keeps coming.
        case trickle(words: Int, every: Duration)
        /// Sends the stream's head at once, then nothing for this long.
        case silent(Duration)
        /// As a model with tools does: a request with `tools` whose last message is not a tool's
        /// answer gets a call of the first tool with `arguments` (a JSON object's text); any other
        /// request is answered `text`. OpenAI's answers carry `system_fingerprint`, and `logprobs`
        /// when asked for.
        case tools(arguments: String, text: String)
    }

    /// What the routes read and write while the server runs.
    final class State: Sendable {
        let behaviour: Mutex<Behaviour>
        /// Bodies of the chat requests received.
        let received = Mutex<[Data]>([])
        /// The `Authorization` header of each chat request (`nil` without one).
        let authorizations = Mutex<[String?]>([])
        /// The `traceparent` header of each chat request (`nil` without one).
        let traceparents = Mutex<[String?]>([])
        /// What the model lists answer.
        let models: Mutex<[String]>
        /// Holds a cut stream open until the test releases it.
        let cutGate = AsyncGate()
        /// Streamed trickles that ended because the other side stopped reading, and those sent to the end.
        let trickles = Mutex<(abandoned: Int, finished: Int)>((0, 0))

        init(_ behaviour: Behaviour, models: [String]) {
            self.behaviour = Mutex(behaviour)
            self.models = Mutex(models)
        }
    }

    let port: Int
    private let state: State

    /// The `Authorization` header of each chat request received.
    var authorizations: [String?] { state.authorizations.withLock { $0 } }

    /// The `traceparent` header of each chat request received.
    var traceparents: [String?] { state.traceparents.withLock { $0 } }

    /// Streamed `.trickle` answers stopped by the caller going away, and those sent to the end.
    var trickles: (abandoned: Int, finished: Int) { state.trickles.withLock { $0 } }

    /// Bodies of the chat requests received, parsed.
    var requests: [[String: Any]] {
        state.received.withLock { $0 }.map { (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] ?? [:] }
    }

    func set(_ behaviour: Behaviour) {
        state.behaviour.withLock { $0 = behaviour }
    }

    /// Lets a `.cut` stream drop its connection, or a `.broken` one send its bad line.
    func releaseCut() {
        state.cutGate.open()
    }

    /// Changes the model list (a pull finished).
    func set(models: [String]) {
        state.models.withLock { $0 = models }
    }

    init(_ behaviour: Behaviour, models: [String] = ["fake-model"]) async throws {
        let state = State(behaviour, models: models)
        self.state = state
        let router = Router()
        @Sendable func answer(_ request: Request, _ wire: Wire) async throws -> Response {
            let body = try await request.body.collect(upTo: 1 << 20)
            let json = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
            state.received.withLock { $0.append(Data(buffer: body)) }
            state.authorizations.withLock { $0.append(request.headers[.authorization]) }
            state.traceparents.withLock { $0.append(HTTPField.Name("traceparent").flatMap { request.headers[$0] }) }
            let model = json["model"] as? String ?? ""
            var current = state.behaviour.withLock { $0 }
            if case .slow(let delay, let text) = current {
                try await Task.sleep(for: delay)
                current = .answer(text, usage: (1, 1))
            }
            if case .tools(let arguments, let text) = current {
                return Self.tools(json, wire, arguments: arguments, text: text, model: model)
            }
            if json["stream"] as? Bool == true {
                return Self.stream(current, wire, model: model, state: state)
            }
            switch current {
            case .answer(let text, let usage):
                return Self.json(.ok, wire.whole(text, usage: usage, model: model))
            case .fail(let status, let message):
                let object: [String: Any] = wire.ollama ? ["error": message] : ["error": ["message": message, "type": "server_error"]]
                return Self.json(HTTPResponse.Status(code: status), object)
            case .trickle(let count, let every):
                // The whole answer, sent in `count` pieces `every` apart.
                let words = (0..<count).map { "w\($0)" }.joined(separator: " ")
                let data = (try? JSONSerialization.data(withJSONObject: wire.whole(words, usage: nil, model: model))) ?? Data()
                let size = max(1, data.count / count + 1)
                return Response(
                    status: .ok, headers: [.contentType: "application/json"],
                    body: ResponseBody { writer in
                        for start in stride(from: 0, to: data.count, by: size) {
                            try await writer.write(ByteBuffer(data: data[start..<min(start + size, data.count)]))
                            try await Task.sleep(for: every)
                        }
                        try await writer.finish(nil)
                    })
            case .slow, .cut, .broken, .silent, .tools:
                return Self.json(.internalServerError, [:])
            }
        }
        router.post("/v1/chat/completions") { request, _ in try await answer(request, Wire(ollama: false, completion: false)) }
        router.post("/v1/completions") { request, _ in try await answer(request, Wire(ollama: false, completion: true)) }
        router.post("/api/chat") { request, _ in try await answer(request, Wire(ollama: true, completion: false)) }
        router.post("/api/generate") { request, _ in try await answer(request, Wire(ollama: true, completion: true)) }
        // Embeddings: each text's vector is [its length in characters, 0.5, -0.25]; usage counts the characters.
        @Sendable func embed(_ request: Request, ollama: Bool) async throws -> Response {
            let body = try await request.body.collect(upTo: 1 << 20)
            state.received.withLock { $0.append(Data(buffer: body)) }
            let json = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
            let texts = json["input"] as? [String] ?? (json["input"] as? String).map { [$0] } ?? []
            let vectors = texts.map { [Double($0.count), 0.5, -0.25] }
            let characters = texts.reduce(0) { $0 + $1.count }
            if ollama { return Self.json(.ok, ["model": json["model"] ?? "", "embeddings": vectors, "prompt_eval_count": characters]) }
            return Self.json(
                .ok,
                [
                    "object": "list", "model": json["model"] ?? "",
                    // Listed last to first: the index, not the order, says which text each is.
                    "data": vectors.enumerated().reversed().map { ["object": "embedding", "index": $0.offset, "embedding": $0.element] },
                    "usage": ["prompt_tokens": characters, "total_tokens": characters],
                ])
        }
        router.post("/v1/embeddings") { request, _ in try await embed(request, ollama: false) }
        router.post("/api/embed") { request, _ in try await embed(request, ollama: true) }
        router.get("/v1/models") { _, _ in
            let models = state.models.withLock { $0 }
            return Self.json(.ok, ["object": "list", "data": models.map { ["id": $0, "object": "model", "owned_by": "fake"] }])
        }
        router.get("/api/tags") { _, _ in
            let models = state.models.withLock { $0 }
            return Self.json(.ok, ["models": models.map { ["name": $0, "model": $0] }])
        }
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let application = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) },
            logger: Logger(label: "fake-llm", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        // Never stopped: it lives until the test process exits. Stopping a Hummingbird server while a
        // client is connecting to it (a connection pool finishing a connect it had started) trips
        // NIO's "Deinited NIOAsyncWriter without calling finish()" precondition and kills the
        // whole test process; an idle loopback listener costs nothing.
        Task { try await application.runService() }
        var iterator = stream.makeAsyncIterator()
        port = await iterator.next() ?? 0
    }

    /// The base URL providers are given.
    var url: String { "http://127.0.0.1:\(port)" }

    /// A streamed answer, word by word: OpenAI's server-sent events or Ollama's NDJSON.
    static func stream(_ behaviour: Behaviour, _ wire: Wire, model: String, state: State) -> Response {
        let gate = state.cutGate
        if case .fail(let status, let message) = behaviour {
            return json(HTTPResponse.Status(code: status), wire.ollama ? ["error": message] : ["error": ["message": message]])
        }
        let headers: HTTPFields = [.contentType: wire.ollama ? "application/x-ndjson" : "text/event-stream"]
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                switch behaviour {
                case .answer(let text, let usage):
                    let words = text.split(separator: " ")
                    for (index, word) in words.enumerated() {
                        try await writer.write(wire.token((index == 0 ? "" : " ") + word, model: model))
                    }
                    try await writer.write(wire.last(usage: usage, model: model))
                    try await writer.finish(nil)
                case .cut(let text, let count):
                    for word in text.split(separator: " ").prefix(count) {
                        try await writer.write(wire.token(String(word) + " ", model: model))
                    }
                    await gate.wait()
                    throw CancellationError()
                case .broken(let text, let count):
                    for word in text.split(separator: " ").prefix(count) {
                        try await writer.write(wire.token(String(word) + " ", model: model))
                    }
                    await gate.wait()
                    try await writer.write(ByteBuffer(string: wire.ollama ? "{not json\n" : "data: {not json\n\n"))
                    try await writer.finish(nil)
                case .trickle(let count, let every):
                    do {
                        for index in 0..<count {
                            try await writer.write(wire.token("w\(index) ", model: model))
                            try await Task.sleep(for: every)
                        }
                        try await writer.write(wire.last(usage: nil, model: model))
                        try await writer.finish(nil)
                    } catch {
                        // A write to a closed connection, or the handler cancelled: the caller left.
                        state.trickles.withLock { $0.abandoned += 1 }
                        throw error
                    }
                    state.trickles.withLock { $0.finished += 1 }
                case .silent(let delay):
                    try await Task.sleep(for: delay)
                    try await writer.finish(nil)
                case .fail, .slow, .tools:
                    try await writer.finish(nil)
                }
            }
        )
    }

    /// The answer of `.tools`: a call of the request's first tool, or `text` after a tool's answer.
    static func tools(_ request: [String: Any], _ wire: Wire, arguments: String, text: String, model: String) -> Response {
        let messages = request["messages"] as? [[String: Any]] ?? []
        let tool = ((request["tools"] as? [[String: Any]])?.first?["function"] as? [String: Any])?["name"] as? String
        let stream = request["stream"] as? Bool == true
        guard let tool, messages.last?["role"] as? String != "tool" else {
            if stream {
                var buffer = wire.token(text, model: model)
                var last = wire.last(usage: (3, 2), model: model)
                buffer.writeBuffer(&last)
                return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: .init(byteBuffer: buffer))
            }
            var object = wire.whole(text, usage: (3, 2), model: model)
            if !wire.ollama {
                object["system_fingerprint"] = "fp_fake"
                if request["logprobs"] as? Bool == true, var choices = object["choices"] as? [[String: Any]] {
                    choices[0]["logprobs"] = [
                        "content": [["token": text, "logprob": -0.25, "bytes": Array(text.utf8).map(Int.init), "top_logprobs": []]]
                    ]
                    object["choices"] = choices
                }
            }
            return json(.ok, object)
        }
        let argumentsObject = (try? JSONSerialization.jsonObject(with: Data(arguments.utf8))) ?? [:]
        if wire.ollama {
            let message: [String: Any] = [
                "role": "assistant", "content": "", "tool_calls": [["function": ["name": tool, "arguments": argumentsObject]]],
            ]
            if stream {
                var buffer = wire.event(["model": model, "message": message, "done": false])
                var last = wire.last(usage: (3, 2), model: model)
                buffer.writeBuffer(&last)
                return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: .init(byteBuffer: buffer))
            }
            return json(
                .ok, ["model": model, "message": message, "done": true, "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 2])
        }
        let call: [String: Any] = ["id": "call_fake1", "type": "function", "function": ["name": tool, "arguments": arguments]]
        if stream {
            // The call in two deltas, as OpenAI streams it: the name, then the arguments.
            let opening: [String: Any] = [
                "index": 0, "id": "call_fake1", "type": "function", "function": ["name": tool, "arguments": ""],
            ]
            var buffer = ByteBuffer()
            for delta: [String: Any] in [
                ["role": "assistant", "content": NSNull(), "tool_calls": [opening]],
                ["tool_calls": [["index": 0, "function": ["arguments": arguments]]]],
            ] {
                var event = wire.event([
                    "id": "fake-1", "object": "chat.completion.chunk", "model": model, "system_fingerprint": "fp_fake",
                    "choices": [["index": 0, "delta": delta]],
                ])
                buffer.writeBuffer(&event)
            }
            var last = wire.event([
                "id": "fake-1", "choices": [["index": 0, "delta": [String: Any](), "finish_reason": "tool_calls"]],
                "usage": Wire.usage((3, 2)),
            ])
            buffer.writeBuffer(&last)
            buffer.writeString("data: [DONE]\n\n")
            return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: .init(byteBuffer: buffer))
        }
        return json(
            .ok,
            [
                "id": "fake-1", "object": "chat.completion", "created": 1_700_000_000, "model": model, "system_fingerprint": "fp_fake",
                "choices": [
                    [
                        "index": 0, "message": ["role": "assistant", "content": NSNull(), "tool_calls": [call]],
                        "finish_reason": "tool_calls",
                    ]
                ],
                "usage": Wire.usage((3, 2)),
            ])
    }

    /// The body of each chat request received, as text.
    var rawRequests: [String] {
        state.received.withLock { $0 }.map { String(decoding: $0, as: UTF8.self) }
    }

    static func json(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: data)))
    }
}

/// Opens once; waiters before and after the opening pass.
final class AsyncGate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let passes = state.withLock { state in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if passes { continuation.resume() }
        }
    }
}

/// One of the four wire formats: Ollama or OpenAI, chat or plain completion.
struct Wire: Sendable {
    var ollama: Bool
    var completion: Bool

    /// A whole answer.
    func whole(_ text: String, usage: (prompt: Int, completion: Int)?, model: String) -> [String: Any] {
        var object: [String: Any]
        if ollama {
            object = ["model": model, "done": true, "done_reason": "stop"]
            if completion {
                object["response"] = text
            } else {
                object["message"] = ["role": "assistant", "content": text]
            }
            if let usage {
                object["prompt_eval_count"] = usage.prompt
                object["eval_count"] = usage.completion
            }
            return object
        }
        let choice: [String: Any] =
            completion
            ? ["index": 0, "text": text, "finish_reason": "stop"]
            : ["index": 0, "message": ["role": "assistant", "content": text], "finish_reason": "stop"]
        object = [
            "id": "fake-1", "object": completion ? "text_completion" : "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [choice],
        ]
        if let usage { object["usage"] = Self.usage(usage) }
        return object
    }

    /// One token's event.
    func token(_ text: String, model: String) -> ByteBuffer {
        if ollama {
            return event(
                completion
                    ? ["model": model, "response": text, "done": false]
                    : ["model": model, "message": ["role": "assistant", "content": text], "done": false])
        }
        let choice: [String: Any] = completion ? ["index": 0, "text": text] : ["index": 0, "delta": ["content": text]]
        return event([
            "id": "fake-1", "object": completion ? "text_completion" : "chat.completion.chunk", "model": model, "choices": [choice],
        ])
    }

    /// The closing event, with usage when given, and OpenAI's `[DONE]`.
    func last(usage: (prompt: Int, completion: Int)?, model: String) -> ByteBuffer {
        if ollama {
            var last: [String: Any] = ["model": model, "done": true, "done_reason": "stop"]
            if completion {
                last["response"] = ""
            } else {
                last["message"] = ["role": "assistant", "content": ""]
            }
            if let usage {
                last["prompt_eval_count"] = usage.prompt
                last["eval_count"] = usage.completion
            }
            return event(last)
        }
        let choice: [String: Any] =
            completion
            ? ["index": 0, "text": "", "finish_reason": "stop"] : ["index": 0, "delta": [String: Any](), "finish_reason": "stop"]
        var last: [String: Any] = ["id": "fake-1", "choices": [choice]]
        if let usage { last["usage"] = Self.usage(usage) }
        var buffer = event(last)
        buffer.writeString("data: [DONE]\n\n")
        return buffer
    }

    /// An NDJSON line, or a server-sent event.
    func event(_ object: [String: Any]) -> ByteBuffer {
        let data = String(decoding: (try? JSONSerialization.data(withJSONObject: object)) ?? Data(), as: UTF8.self)
        return ByteBuffer(string: ollama ? data + "\n" : "data: \(data)\n\n")
    }

    static func usage(_ usage: (prompt: Int, completion: Int)) -> [String: Int] {
        ["prompt_tokens": usage.prompt, "completion_tokens": usage.completion, "total_tokens": usage.prompt + usage.completion]
    }
}
