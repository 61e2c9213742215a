// The baseline of Cortex's benchmarks: bare Hummingbird answering the same routes with no logic,
// on the same executor setting as `cortex` (Swift concurrency on NIO's event loops).
import AsyncHTTPClient
import CortexCore
import CortexRuntime
import Foundation
import Hummingbird
import NIOCore
import NIOPosix

NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()

let port = Int(ProcessInfo.processInfo.environment["PORT"] ?? "") ?? 8100
let router = Router()
router.get("/health") { _, _ in
    Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
}
// Echoes the request body, the cheapest possible answer to an inference request.
router.post("/v2/models/{model}/infer") { request, _ in
    let body = try await request.body.collect(upTo: 1_048_576)
    return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
}
// With ONNX_MODEL set: the echo plus one ONNX Runtime `Run` of that model on zeros (batch 1,
// other dynamic dimensions 8), the least an ONNX server on this stack can do, the floor under
// Cortex's own cost in bench/onnx.sh: no JSON, validation, metrics or logs.
if let path = ProcessInfo.processInfo.environment["ONNX_MODEL"] {
    let loaded = try ModelLoader().load(ModelSource(name: "floor", path: path))
    let model = (loaded as? BatchedModel)?.base ?? loaded
    let inputs = model.metadata.zeroInputs(batch: 1, size: 8)
    router.post("/onnx/infer") { request, _ in
        let body = try await request.body.collect(upTo: 1_048_576)
        _ = try model.infer(inputs)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }
}
// A fast fake OpenAI-compatible upstream for bench/llm.sh: a fixed chat answer with usage, whole
// or streamed as server-sent events (three tokens, the finish reason and usage, then [DONE]).
let answer =
    #"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"fake-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the fake upstream"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#
let tokens = ["Hello", " from", " the fake upstream"].map { token in
    #"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"fake-model","choices":[{"index":0,"delta":{"content":"\#(token)"},"finish_reason":null}]}"#
        + "\n\n"
}
let streamEnd =
    #"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"fake-model","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#
    + "\n\ndata: [DONE]\n\n"
router.get("/v1/models") { _, _ in
    Response(
        status: .ok, headers: [.contentType: "application/json"],
        body: .init(byteBuffer: ByteBuffer(string: #"{"object":"list","data":[{"id":"fake-model","object":"model","owned_by":"bench"}]}"#)))
}
router.post("/v1/chat/completions") { request, _ in
    let body = try await request.body.collect(upTo: 1_048_576)
    guard String(buffer: body).contains(#""stream":true"#) else {
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: answer)))
    }
    return Response(
        status: .ok, headers: [.contentType: "text/event-stream"],
        body: ResponseBody { writer in
            for token in tokens { try await writer.write(ByteBuffer(string: token)) }
            try await writer.write(ByteBuffer(string: streamEnd))
            try await writer.finish(nil)
        })
}
// With UPSTREAM set: the least a proxy on this stack can do, the floor under Cortex's LLM gateway
// in bench/llm.sh. `POST /proxy/v1/chat/completions` forwards the body to UPSTREAM's
// /v1/chat/completions through Cortex's own `LoopClients` (an AsyncHTTPClient per event loop,
// no tracer, as Cortex's providers have) and returns the answer, whole or streamed as it
// arrives: no auth, limits, billing, metrics or logs.
if let upstream = ProcessInfo.processInfo.environment["UPSTREAM"] {
    var configuration = HTTPClient.Configuration()
    configuration.tracing.tracer = nil
    configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
    let clients = LoopClients(configuration: configuration)
    let url = upstream + "/v1/chat/completions"
    router.post("/proxy/v1/chat/completions") { request, _ in
        let body = try await request.body.collect(upTo: 1_048_576)
        let client = clients.current
        var forward = HTTPClientRequest(url: url)
        forward.method = .POST
        forward.headers.add(name: "Content-Type", value: "application/json")
        forward.body = .bytes(body)
        let answer = try await client.execute(forward, timeout: .seconds(30))
        guard String(buffer: body).contains(#""stream":true"#) else {
            let bytes = try await answer.body.collect(upTo: 1_048_576)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: bytes))
        }
        // Streamed: each chunk of the upstream's events is written on as it arrives.
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream"],
            body: ResponseBody { writer in
                for try await chunk in answer.body { try await writer.write(chunk) }
                try await writer.finish(nil)
            })
    }
}
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "bare"))
try await app.runService()
