import Foundation
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
        /// Sends the stream's head at once, then nothing for this long.
        case silent(Duration)
    }

    /// What the routes read and write while the server runs.
    final class State: Sendable {
        let behaviour: Mutex<Behaviour>
        /// Bodies of the chat requests received.
        let received = Mutex<[Data]>([])
        /// What the model lists answer.
        let models: Mutex<[String]>
        /// Holds a cut stream open until the test releases it.
        let cutGate = AsyncGate()

        init(_ behaviour: Behaviour, models: [String]) {
            self.behaviour = Mutex(behaviour)
            self.models = Mutex(models)
        }
    }

    let port: Int
    private let state: State
    private let task: Task<Void, any Error>

    /// Bodies of the chat requests received, parsed.
    var requests: [[String: Any]] {
        state.received.withLock { $0 }.map { (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] ?? [:] }
    }

    func set(_ behaviour: Behaviour) {
        state.behaviour.withLock { $0 = behaviour }
    }

    /// Lets a `.cut` stream drop its connection.
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
        @Sendable func answer(_ request: Request, ollama: Bool) async throws -> Response {
            let body = try await request.body.collect(upTo: 1 << 20)
            let json = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
            state.received.withLock { $0.append(Data(buffer: body)) }
            let model = json["model"] as? String ?? ""
            var current = state.behaviour.withLock { $0 }
            if case .slow(let delay, let text) = current {
                try await Task.sleep(for: delay)
                current = .answer(text, usage: (1, 1))
            }
            if json["stream"] as? Bool == true {
                return Self.stream(current, ollama: ollama, model: model, gate: state.cutGate)
            }
            switch current {
            case .answer(let text, let usage):
                var object: [String: Any]
                if ollama {
                    object = ["model": model, "message": ["role": "assistant", "content": text], "done": true, "done_reason": "stop"]
                    if let usage {
                        object["prompt_eval_count"] = usage.prompt
                        object["eval_count"] = usage.completion
                    }
                } else {
                    object = [
                        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": model,
                        "choices": [["index": 0, "message": ["role": "assistant", "content": text], "finish_reason": "stop"]],
                    ]
                    if let usage {
                        object["usage"] = [
                            "prompt_tokens": usage.prompt, "completion_tokens": usage.completion,
                            "total_tokens": usage.prompt + usage.completion,
                        ]
                    }
                }
                return Self.json(.ok, object)
            case .fail(let status, let message):
                let object: [String: Any] = ollama ? ["error": message] : ["error": ["message": message, "type": "server_error"]]
                return Self.json(HTTPResponse.Status(code: status), object)
            case .slow, .cut, .silent:
                return Self.json(.internalServerError, [:])
            }
        }
        router.post("/v1/chat/completions") { request, _ in try await answer(request, ollama: false) }
        router.post("/api/chat") { request, _ in try await answer(request, ollama: true) }
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
        task = Task { try await application.runService() }
        var iterator = stream.makeAsyncIterator()
        port = await iterator.next() ?? 0
    }

    /// The base URL providers are given.
    var url: String { "http://127.0.0.1:\(port)" }

    func stop() {
        task.cancel()
    }

    /// One event of a stream: an NDJSON line, or a server-sent event.
    static func event(_ object: [String: Any], ollama: Bool) -> ByteBuffer {
        let data = String(decoding: (try? JSONSerialization.data(withJSONObject: object)) ?? Data(), as: UTF8.self)
        return ByteBuffer(string: ollama ? data + "\n" : "data: \(data)\n\n")
    }

    static func token(_ text: String, ollama: Bool, model: String) -> ByteBuffer {
        ollama
            ? event(["model": model, "message": ["role": "assistant", "content": text], "done": false], ollama: true)
            : event(
                ["id": "c1", "object": "chat.completion.chunk", "model": model, "choices": [["index": 0, "delta": ["content": text]]]],
                ollama: false)
    }

    /// The closing event, with usage when given, and OpenAI's `[DONE]`.
    static func last(usage: (prompt: Int, completion: Int)?, ollama: Bool, model: String) -> ByteBuffer {
        if ollama {
            var last: [String: Any] = [
                "model": model, "message": ["role": "assistant", "content": ""], "done": true, "done_reason": "stop",
            ]
            if let usage {
                last["prompt_eval_count"] = usage.prompt
                last["eval_count"] = usage.completion
            }
            return event(last, ollama: true)
        }
        var last: [String: Any] = ["id": "c1", "choices": [["index": 0, "delta": [String: Any](), "finish_reason": "stop"]]]
        if let usage {
            last["usage"] = [
                "prompt_tokens": usage.prompt, "completion_tokens": usage.completion, "total_tokens": usage.prompt + usage.completion,
            ]
        }
        var buffer = event(last, ollama: false)
        buffer.writeString("data: [DONE]\n\n")
        return buffer
    }

    /// A streamed answer, word by word: OpenAI's server-sent events or Ollama's NDJSON.
    static func stream(_ behaviour: Behaviour, ollama: Bool, model: String, gate: AsyncGate) -> Response {
        if case .fail(let status, let message) = behaviour {
            return json(HTTPResponse.Status(code: status), ollama ? ["error": message] : ["error": ["message": message]])
        }
        let headers: HTTPFields = [.contentType: ollama ? "application/x-ndjson" : "text/event-stream"]
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                switch behaviour {
                case .answer(let text, let usage):
                    let words = text.split(separator: " ")
                    for (index, word) in words.enumerated() {
                        try await writer.write(token((index == 0 ? "" : " ") + word, ollama: ollama, model: model))
                    }
                    try await writer.write(last(usage: usage, ollama: ollama, model: model))
                    try await writer.finish(nil)
                case .cut(let text, let count):
                    for word in text.split(separator: " ").prefix(count) {
                        try await writer.write(token(String(word) + " ", ollama: ollama, model: model))
                    }
                    await gate.wait()
                    throw CancellationError()
                case .silent(let delay):
                    try await Task.sleep(for: delay)
                    try await writer.finish(nil)
                case .fail, .slow:
                    try await writer.finish(nil)
                }
            }
        )
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
