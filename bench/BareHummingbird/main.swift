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
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "bare"))
try await app.runService()
