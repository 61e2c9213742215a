// The baseline of Cortex's benchmarks: bare Hummingbird answering the same routes with no logic,
// on the same executor setting as `cortex` (Swift concurrency on NIO's event loops).
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
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "bare"))
try await app.runService()
