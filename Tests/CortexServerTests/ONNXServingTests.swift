import AsyncHTTPClient
import CortexTestSupport
import Foundation
import NIOCore
import Testing

/// The bundled ONNX classifiers served by a real Cortex process: NVIDIA's `tritonclient` against
/// it, and dynamic batching under concurrency.
@Suite("ONNX models over HTTP (real processes, real ONNX Runtime)", .serialized)
struct ONNXServingTests {
    @Test("the official tritonclient (pip) works against Cortex: metadata, config, JSON and binary tensors, errors, stats")
    func tritonClient() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(environment: [:], directory: directory)
        defer { cortex.terminate() }
        try await Self.waitUntilReady(["vA", "vB"], port: port)
        let (status, output) = try await Self.python(["Tests/Python/tritonclient_check.py", "127.0.0.1:\(port)", RawHTTPConnection.demoKey])
        #expect(status == 0, "\(output)")
        #expect(output.contains("tritonclient: all checks passed"), "\(output)")
    }

    @Test("dynamic batching: concurrent single requests merge into batches and each answer equals its unbatched result")
    func batching() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // vA with a queue delay, so concurrent requests surely meet in the queue.
        let model = directory.file("vA.onnx")
        try FileManager.default.copyItem(atPath: Repository.path("models/vA.onnx"), toPath: model)
        let manifest = try String(contentsOfFile: Repository.path("models/vA.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "max_queue_delay_us: 0", with: "max_queue_delay_us: 2000")
        try manifest.write(toFile: directory.file("vA.yaml"), atomically: true, encoding: .utf8)
        let (cortex, port) = try await CortexProcess.serve(
            environment: ["MODEL_VA_PATH": model],
            directory: directory
        )
        defer { cortex.terminate() }
        try await Self.waitUntilReady(["vA"], port: port)
        let images = try DigitsFixture.load(root: Repository.root).exact
        // ONNX Runtime's own unbatched answers on this machine (Python's onnxruntime, same release).
        let alone = try ONNXReference.live().outputs("vA").single
        let requests = 240
        let mismatches = try await LedgerLoadTests.withClient { client in
            await withTaskGroup(of: Int.self) { group in
                for index in 0..<requests {
                    group.addTask {
                        let image = images[index % images.count]
                        let expected = alone[index % images.count]
                        let data = (image.pixels ?? []).map { "\(Float($0) / 255)" }.joined(separator: ",")
                        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v2/models/vA/infer")
                        request.method = .POST
                        request.headers.add(name: "X-API-Key", value: RawHTTPConnection.demoKey)
                        request.body = .bytes(
                            ByteBuffer(string: #"{"inputs":[{"name":"image","shape":[1,1,8,8],"datatype":"FP32","data":[\#(data)]}]}"#))
                        guard let response = try? await client.execute(request, timeout: .seconds(60)), response.status == .ok,
                            let body = try? await response.body.collect(upTo: 1 << 20),
                            let json = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
                            let output = (json["outputs"] as? [[String: Any]])?.first, let values = output["data"] as? [Double]
                        else { return 1 }
                        return values.map(Float.init) == expected ? 0 : 1
                    }
                }
                return await group.reduce(0, +)
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(requests) answers differ from ONNX Runtime's unbatched result")
        let stats = try #require(try RawHTTPConnection.request(port: port, path: "/v2/models/vA/stats"))
        let model0 = try #require(
            ((try JSONSerialization.jsonObject(with: Data(stats.body.utf8)) as? [String: Any])?["model_stats"] as? [[String: Any]])?.first)
        let executions = try #require(model0["execution_count"] as? Int)
        #expect(model0["inference_count"] as? Int == requests)
        #expect(executions < requests, "batches larger than 1 formed: \(executions) executions for \(requests) requests")
        let batchSizes = ((model0["batch_stats"] as? [[String: Any]]) ?? []).compactMap { $0["batch_size"] as? Int }
        #expect(batchSizes.contains { $0 > 1 })
        let metrics = try #require(try RawHTTPConnection.request(port: port, path: "/metrics")).body
        #expect(metrics.contains(#"model_batch_size_count{model="vA"} \#(executions)"#))
        #expect(metrics.contains(#"model_batch_size_sum{model="vA"} \#(requests).0"#))
        #expect(metrics.contains(#"model_queue_seconds_count{model="vA"} \#(requests)"#))
    }

    @Test("without ONNX Runtime the server starts and serves the rest; the ONNX models say why they are not ready")
    func missingLibrary() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(
            environment: ["ORT_LIBRARY_PATH": "/nonexistent/libonnxruntime.so"],
            directory: directory
        )
        defer { cortex.terminate() }
        let ready = try #require(try RawHTTPConnection.request(port: port, path: "/ready"))
        #expect(ready.status == 200, "lead-scoring still serves")
        #expect(
            ready.body.contains("vA: models/vA.onnx: the configured ONNX Runtime library /nonexistent/libonnxruntime.so does not exist"))
        let status = try #require(try RawHTTPConnection.request(port: port, path: "/status"))
        let models = try #require(
            (try JSONSerialization.jsonObject(with: Data(status.body.utf8)) as? [String: Any])?["models"] as? [[String: Any]])
        let vB = try #require(models.first { $0["name"] as? String == "vB" })
        #expect(vB["state"] as? String == "failed")
        #expect((vB["reason"] as? String)?.contains("ONNX Runtime library") == true)
        let infer = try #require(
            try RawHTTPConnection.request(
                port: port, method: "POST", path: "/v2/models/vA/infer",
                body: #"{"inputs":[{"name":"image","shape":[1,1,1,1],"datatype":"FP32","data":[0]}]}"#))
        #expect(infer.status == 503)
        #expect(infer.body.contains("model_not_ready"))
        let score = try #require(
            try RawHTTPConnection.request(port: port, method: "POST", path: "/api/v1/score", body: LedgerLoadTests.lead))
        #expect(score.status == 200)
    }

    /// Waits (at most 30 s) until each model answers ready: warm-up runs after the server starts.
    static func waitUntilReady(_ models: [String], port: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        for model in models {
            while try RawHTTPConnection.request(port: port, path: "/v2/models/\(model)/ready")?.status != 200 {
                guard ContinuousClock.now < deadline else {
                    Issue.record("\(model) did not become ready")
                    return
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// Runs the project's virtualenv Python (scripts/onnxruntime.sh install made it) from the repository root.
    static func python(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let (status, output) = try await CortexProcess.output(Repository.path(".venv/bin/python"), arguments, timeout: .seconds(120))
        return (status ?? -1, output)
    }
}
