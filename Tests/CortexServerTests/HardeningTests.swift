import CortexTestSupport
import Foundation
import Testing

/// Requests that once crashed the server or were answered wrongly, sent to a real `cortex`
/// process over raw sockets: each must get its 4xx, and the server must keep serving.
@Suite("Hardening: regressions through the real binary", .serialized)
struct HardeningTests {
    static let adminToken = "hardening-admin-token-0123456789"

    /// A V2 request with the binary data extension: the JSON header, then `binary`.
    static func binaryRequest(shape: [Int], datatype: String, binary: [UInt8]) -> (body: [UInt8], headerLength: Int) {
        let header =
            #"{"inputs":[{"name":"image","shape":\#(shape),"datatype":"\#(datatype)","parameters":{"binary_data_size":\#(binary.count)}}]}"#
        return (Array(header.utf8) + binary, header.utf8.count)
    }

    @Test("tensor sizes that overflow 64 bits, and empty dimensions, are 400s; the server keeps serving")
    func tensorSizes() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(environment: [:], directory: directory)
        defer { cortex.terminate() }
        try await ONNXServingTests.waitUntilReady(["vA"], port: port)
        let cases: [(shape: [Int], datatype: String, bytes: Int, reason: String)] = [
            // 2^61 FP32 elements need 2^63 bytes: the product used to trap before any check.
            ([2_305_843_009_213_693_952], "FP32", 4, "bytes of binary data"),
            ([1_152_921_504_606_846_976], "FP64", 8, "bytes of binary data"),
            ([288_230_376_151_711_744, 1, 2, 4], "FP32", 4, "bytes of binary data"),
            ([2_305_843_009_213_693_952], "BYTES", 4, "BYTES elements"),
            // The element count itself overflows.
            ([4_611_686_018_427_387_904, 4], "FP32", 4, "invalid shape"),
            // A dimension of 0 used to reach ONNX Runtime and answer 500.
            ([1, 1, 8, 0], "FP32", 0, "every dimension must be at least 1"),
            ([0, 1, 8, 8], "FP32", 0, "every dimension must be at least 1"),
        ]
        for (shape, datatype, bytes, reason) in cases {
            let (body, headerLength) = Self.binaryRequest(shape: shape, datatype: datatype, binary: Array(repeating: 0, count: bytes))
            let response = try #require(
                try RawHTTPConnection.request(
                    port: port, method: "POST", path: "/v2/models/vA/infer", body: body,
                    headers: [("Inference-Header-Content-Length", "\(headerLength)")]))
            #expect(response.status == 400, "\(shape) \(datatype): \(response.body)")
            #expect(response.body.contains(reason), "\(shape) \(datatype): \(response.body)")
            #expect(response.body.contains("request_id"), "\(response.body)")
        }
        // The same empty dimension as JSON data.
        let json = try #require(
            try RawHTTPConnection.request(
                port: port, method: "POST", path: "/v2/models/vA/infer",
                body: #"{"inputs":[{"name":"image","shape":[1,1,8,0],"datatype":"FP32","data":[]}]}"#))
        #expect(json.status == 400, "\(json.body)")
        #expect(json.body.contains("every dimension must be at least 1"))
        #expect(cortex.process.isRunning)
        #expect(try RawHTTPConnection.request(port: port, path: "/health")?.status == 200)
        let metrics = try #require(try RawHTTPConnection.request(port: port, path: "/metrics")).body
        #expect(
            metrics.contains(#"inference_outcome_total{model="vA",outcome="invalid_input"} 3"#), "the three that parse reach validation")
        let errors = metrics.split(separator: "\n").first { $0.hasPrefix(#"inference_outcome_total{model="vA",outcome="error"}"#) }
        #expect(errors == nil || errors?.hasSuffix(" 0") == true, "no inference failed: \(errors ?? "")")
    }

    @Test("a grant past the most a balance holds is a 422 naming the limit; the balance stays readable and the ledger verifies")
    func balanceLimit() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = "sqlite:" + directory.file("cortex.db")
        let (cortex, port) = try await CortexProcess.serve(
            environment: ["ADMIN_TOKEN": Self.adminToken, "DATABASE_URL": database, "DEMO_CREDITS": "100"], directory: directory)
        defer { cortex.terminate() }
        let admin = [("Authorization", "Bearer \(Self.adminToken)")]
        func grant(_ amount: String) throws -> (status: Int, body: String) {
            try #require(
                try RawHTTPConnection.request(
                    port: port, method: "POST", path: "/admin/tenants/demo/credits", body: #"{"amount":"\#(amount)"}"#, demoKey: "",
                    headers: admin))
        }
        // The whole 64-bit range on top of 100 credits: refused, nothing changes.
        let over = try grant("9223372036854.775807")
        #expect(over.status == 422, "\(over.body)")
        #expect(over.body.contains(#""code":"balance_limit""#), "\(over.body)")
        #expect(over.body.contains("9223372036854.775807"), "the limit is named: \(over.body)")
        // Up to the limit exactly, then one micro-credit more.
        #expect(try grant("9223372036754.775807").status == 200)
        let more = try grant("0.000001")
        #expect(more.status == 422, "\(more.body)")
        // Reads that used to crash the process once the balance had become a float.
        let me = try #require(try RawHTTPConnection.request(port: port, path: "/me"))
        #expect(me.status == 200, "\(me.body)")
        #expect(me.body.contains("9223372036854.775807"), "\(me.body)")
        let credits = try #require(
            try RawHTTPConnection.request(port: port, path: "/admin/tenants/demo/credits", demoKey: "", headers: admin))
        #expect(credits.status == 200, "\(credits.body)")
        #expect(cortex.process.isRunning)
        let verify = try await CortexProcess.run(["db", "verify"], environment: ["DATABASE_URL": database])
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
        let balance = try await CortexProcess.run(["credits", "balance", "demo"], environment: ["DATABASE_URL": database])
        #expect(balance.status == 0, "\(balance.stdout) \(balance.stderr)")
        #expect(balance.stdout.contains("9223372036854.775807"), "\(balance.stdout)")
    }

    /// A real Cortex in front of `upstream` (OpenAI-compatible, billed: 1 credit per 1,000 prompt
    /// tokens, 2 per 1,000 generated), once its primary is warm.
    static func llmServer(
        _ upstream: RawUpstream, directory: TemporaryDirectory, environment: [String: String] = [:]
    ) async throws -> (CortexProcess, port: Int) {
        let (cortex, port) = try await CortexProcess.serve(
            environment: [
                "LLM_PRIMARY_URL": upstream.url, "LLM_PRIMARY_KIND": "openai", "LLM_PRIMARY_MODEL": "fake-model",
                "LLM_PRICE_INPUT_PER_1K": "1", "LLM_PRICE_OUTPUT_PER_1K": "2", "DEMO_CREDITS": "10", "PRIMARY_POLL_INTERVAL_S": "0.05",
            ].merging(environment) { _, new in new },
            directory: directory)
        let deadline = ContinuousClock.now + .seconds(30)
        while try RawHTTPConnection.request(port: port, path: "/api/status/summary")?.body.contains(#""path":"primary""#) != true {
            guard ContinuousClock.now < deadline else {
                Issue.record("the primary did not become warm")
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return (cortex, port)
    }

    /// The whole of a streamed (chunked) answer, read until the server closes the connection.
    static func stream(port: Int, path: String, body: String) throws -> String {
        let connection = try RawHTTPConnection(port: port)
        defer { connection.close() }
        connection.send(
            "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: \(RawHTTPConnection.demoKey)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        )
        return connection.readToEnd()
    }

    static func balance(port: Int) throws -> Decimal? {
        let me = try #require(try RawHTTPConnection.request(port: port, path: "/me"))
        return ((try? JSONSerialization.jsonObject(with: Data(me.body.utf8))) as? [String: Any])?["balance"]
            .flatMap { ($0 as? NSNumber)?.decimalValue }
    }

    @Test(
        "an upstream that closes its connection mid-stream (a response framed by the close) is a cut: stream_cut, billed for what was delivered"
    )
    func streamCutByClose() async throws {
        let upstream = try RawUpstream { request in
            // Three tokens, then the connection closes: no finish reason, no [DONE].
            let tokens = ["w1 ", "w2 ", "w3 "].map { RawUpstream.chunk($0) }
            return request.contains("whole")
                ? RawUpstream.closeFramedStream(tokens + [RawUpstream.chunk("", finishReason: "stop"), "[DONE]"])
                : RawUpstream.closeFramedStream(tokens)
        }
        defer { upstream.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await Self.llmServer(upstream, directory: directory)
        defer { cortex.terminate() }
        let before = try #require(try Self.balance(port: port))

        let cut = try Self.stream(port: port, path: "/generate", body: #"{"prompt":"hello","max_tokens":50,"stream":true}"#)
        #expect(cut.contains("w1") && cut.contains("w3"), "what came is delivered: \(cut)")
        #expect(cut.contains("event: error") && cut.contains("stream_cut"), "\(cut)")
        #expect(!cut.contains(#""done":true"#), "a cut stream never looks complete: \(cut)")
        // 13 prompt tokens (no usage came) and the 3 delivered, not the 50 held: 0.013 + 0.006.
        let afterCut = try #require(try Self.balance(port: port))
        #expect(before - afterCut == Decimal(string: "0.019"), "charged \(before - afterCut)")

        // The same on the OpenAI route: an error event, never [DONE] or a finish reason.
        let openAI = try Self.stream(
            port: port, path: "/v1/chat/completions",
            body: #"{"model":"chat","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hello"}]}"#)
        #expect(openAI.contains("stream_cut"), "\(openAI)")
        #expect(!openAI.contains("data: [DONE]") && !openAI.contains(#""finish_reason":"stop""#), "\(openAI)")

        // Framed by the close but complete (a finish reason, then [DONE]): a whole answer.
        let whole = try Self.stream(port: port, path: "/generate", body: #"{"prompt":"whole","max_tokens":50,"stream":true}"#)
        #expect(whole.contains(#""done":true"#), "\(whole)")
        #expect(!whole.contains("stream_cut"), "\(whole)")

        let metrics = try #require(try RawHTTPConnection.request(port: port, path: "/metrics")).body
        #expect(metrics.contains(#"outcome="cut"} 2"#), "two cut streams counted")
        // Log lines travel through a pipe: wait (bounded) for both.
        let deadline = ContinuousClock.now + .seconds(10)
        while cortex.logEvents.filter({ $0["event"] as? String == "LLM_STREAM_CUT" }).count < 2, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(cortex.logEvents.filter { $0["event"] as? String == "LLM_STREAM_CUT" }.count == 2)
    }

    @Test("a provider error that echoes the request's Authorization header reaches neither the client nor the logs")
    func providerKeyRedacted() async throws {
        let key = "sk-upstream-secret-0123456789"
        let upstream = try RawUpstream { request in
            // What a careless upstream or proxy does: quote the header it refused.
            let echoed = RawUpstream.header("Authorization", in: request) ?? "none"
            let body = #"{"error":{"message":"invalid header Authorization: \#(echoed)","type":"invalid_request_error"}}"#
            return RawUpstream.json(body, status: request.contains("refused") ? "401 Unauthorized" : "500 Internal Server Error")
        }
        defer { upstream.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await Self.llmServer(upstream, directory: directory, environment: ["LLM_PRIMARY_API_KEY": key])
        defer { cortex.terminate() }
        var answers: [String] = []
        for prompt in ["failed", "refused"] {
            let whole = try #require(
                try RawHTTPConnection.request(
                    port: port, method: "POST", path: "/v1/chat/completions",
                    body: #"{"model":"chat","messages":[{"role":"user","content":"\#(prompt)"}]}"#))
            #expect(whole.status >= 400, "\(whole.body)")
            answers.append(whole.body)
            answers.append(
                try Self.stream(port: port, path: "/generate", body: #"{"prompt":"\#(prompt)","max_tokens":5,"stream":true}"#))
        }
        // The key did reach the upstream, and its echo came back.
        #expect(upstream.received.contains { $0.contains("Bearer \(key)") })
        for answer in answers {
            #expect(!answer.contains(key), "\(answer)")
        }
        #expect(answers.contains { $0.contains("[redacted]") }, "the provider's message is kept, without the key: \(answers)")
        // Log lines travel through a pipe: wait (bounded) until the provider errors are in.
        let deadline = ContinuousClock.now + .seconds(10)
        while !cortex.stdout.contains("[redacted]"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(!cortex.stdout.contains(key) && !cortex.stderr.contains(key), "no log line carries the key")
        #expect(cortex.stdout.contains("[redacted]"), "the logged provider error is kept, redacted")
    }
}
