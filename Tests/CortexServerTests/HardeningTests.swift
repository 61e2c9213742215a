import CortexTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

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
            metrics.contains(#"inference_outcome_total{model="vA",outcome="invalid_input"} 8"#),
            "every refusal counts, the parser's and the signature's")
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

    /// What the server answers to `bytes` on a fresh connection, read until it closes it.
    static func exchange(port: Int, _ bytes: [UInt8]) throws -> String {
        let connection = try RawHTTPConnection(port: port)
        defer { connection.close() }
        connection.send(bytes)
        return connection.readToEnd()
    }

    static let scoreHead = "POST /api/v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: \(RawHTTPConnection.demoKey)\r\n"

    @Test("bad HTTP framing is the client's error: 400, 413 or 431 in the JSON shape with a request id, never a 500")
    func framing() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(environment: ["MAX_BODY_BYTES": "65536"], directory: directory)
        defer { cortex.terminate() }
        let chunked = Self.scoreHead + "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        let cases: [(String, [UInt8], String, String)] = [
            ("chunk size zz", Array((chunked + "zz\r\nabc\r\n0\r\n\r\n").utf8), "400", "malformed_request"),
            ("chunk size -5", Array((chunked + "-5\r\nabc\r\n0\r\n\r\n").utf8), "400", "malformed_request"),
            ("chunk size 2^64", Array((chunked + "10000000000000000\r\nabc\r\n0\r\n\r\n").utf8), "400", "malformed_request"),
            ("short chunk", Array((chunked + "5\r\nab\r\n0\r\n\r\n").utf8), "400", "malformed_request"),
            ("missing CRLF", Array((chunked + "3\r\nabc0\r\n\r\n").utf8), "400", "malformed_request"),
            (
                "chunked body over MAX_BODY_BYTES",
                Array((chunked + "20000\r\n" + String(repeating: "a", count: 0x20000) + "\r\n0\r\n\r\n").utf8),
                "413", "payload_too_large"
            ),
            (
                "a request line of 100 KB", Array(("GET /" + String(repeating: "a", count: 100_000) + " HTTP/1.1\r\nHost: x\r\n\r\n").utf8),
                "431", "headers_too_large"
            ),
            (
                "a header of 100 KB",
                Array(("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 100_000) + "\r\n\r\n").utf8),
                "431", "headers_too_large"
            ),
            ("not HTTP at all", Array("\u{01}\u{02}garbage\r\n\r\n".utf8), "400", "malformed_request"),
        ]
        for (name, bytes, status, code) in cases {
            let answer = try Self.exchange(port: port, bytes)
            #expect(answer.hasPrefix("HTTP/1.1 \(status)"), "\(name): \(answer.prefix(300))")
            #expect(answer.contains(#""code":"\#(code)""#), "\(name): \(answer.prefix(300))")
            #expect(answer.contains(#""request_id":""#), "\(name): \(answer.prefix(300))")
        }
        #expect(cortex.process.isRunning)
        #expect(try RawHTTPConnection.request(port: port, path: "/health")?.status == 200)
        #expect(!cortex.stdout.contains("UNHANDLED_ERROR"), "none of them was a fault of the server")
    }

    @Test("requests sent too slowly, or never finished, get 408 within their stage's deadline; idle connections close; the rest is served")
    func readDeadlines() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(
            environment: ["REQUEST_HEADER_TIMEOUT_S": "0.5", "REQUEST_BODY_TIMEOUT_S": "0.5", "IDLE_TIMEOUT_S": "0.5"],
            directory: directory)
        defer { cortex.terminate() }
        let cases: [(String, String, String)] = [
            // A Content-Length no body will ever fill, and one past Int64.
            ("body shorter than its Content-Length", Self.scoreHead + "Content-Length: 100\r\n\r\n{}", "REQUEST_BODY_TIMEOUT_S"),
            ("Content-Length 2^63", Self.scoreHead + "Content-Length: 9223372036854775808\r\n\r\n{}", "REQUEST_BODY_TIMEOUT_S"),
            ("no final chunk", Self.scoreHead + "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n", "REQUEST_BODY_TIMEOUT_S"),
            // A head that starts and never ends (what a byte every 100 ms amounts to).
            ("unfinished head", "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a", "REQUEST_HEADER_TIMEOUT_S"),
        ]
        for (name, request, setting) in cases {
            let answer = try Self.exchange(port: port, Array(request.utf8))
            #expect(answer.hasPrefix("HTTP/1.1 408"), "\(name): \(answer.prefix(300))")
            #expect(answer.contains(#""code":"request_timeout""#) && answer.contains(setting), "\(name): \(answer.prefix(300))")
        }
        // A head trickled a byte at a time: the deadline runs from its first byte, not its last.
        let trickled = try RawHTTPConnection(port: port)
        let head = Array("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: \(String(repeating: "a", count: 200))\r\n\r\n".utf8)
        var sent = 0
        var answer = ""
        while sent < head.count {
            trickled.send([head[sent]])
            sent += 1
            try await Task.sleep(for: .milliseconds(50))
            // Stop as soon as the server has answered (the 408 is waiting to be read).
            var probe = pollfd(fd: trickled.socket, events: Int16(POLLIN), revents: 0)
            if poll(&probe, 1, 0) > 0 {
                answer = trickled.readToEnd()
                break
            }
        }
        trickled.close()
        #expect(sent < head.count, "the server cut the trickle before its end")
        #expect(answer.hasPrefix("HTTP/1.1 408"), "\(answer.prefix(300))")
        // An idle connection is closed after IDLE_TIMEOUT_S, without an answer.
        let idle = try RawHTTPConnection(port: port)
        #expect(idle.readToEnd().isEmpty)
        idle.close()
        // A kept-alive connection: a request, then idle, then closed.
        let kept = try RawHTTPConnection(port: port)
        kept.send("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        #expect(kept.readToEnd().hasPrefix("HTTP/1.1 200"))
        kept.close()
        #expect(try RawHTTPConnection.request(port: port, path: "/health")?.status == 200)
        let metrics = try #require(try RawHTTPConnection.request(port: port, path: "/metrics")).body
        #expect(metrics.contains(#"http_request_timeouts_total{stage="body"} 3"#), "\(metrics)")
        #expect(metrics.contains(#"http_request_timeouts_total{stage="header"} 2"#))
    }

    @Test("past MAX_CONNECTIONS a new connection gets 503 and is closed; the open ones go on being served")
    func connectionCap() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(environment: ["MAX_CONNECTIONS": "3"], directory: directory)
        defer { cortex.terminate() }
        // Three accepted, one after another (a request answered on each proves the server took it:
        // a connection the kernel queued may otherwise be taken after the fourth).
        var open: [RawHTTPConnection] = []
        defer { for connection in open { connection.close() } }
        for _ in 0..<3 {
            let connection = try RawHTTPConnection(port: port)
            open.append(connection)
            connection.send("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            #expect(connection.readResponse()?.status == 200)
        }
        let refused = try Self.exchange(port: port, Array("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        #expect(refused.hasPrefix("HTTP/1.1 503"), "\(refused)")
        #expect(refused.contains(#""code":"too_many_connections""#) && refused.contains("Retry-After: 1"), "\(refused)")
        for connection in open {
            connection.send("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            #expect(connection.readResponse()?.status == 200, "an open connection is still served")
        }
        open[2].close()
        // Its place frees once the server sees the close.
        var status: Int?
        for _ in 0..<200 where status != 200 {
            let answer = try Self.exchange(port: port, Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
            status = Int(answer.split(separator: " ").dropFirst().first ?? "")
            if status == 200 {
                #expect(answer.contains("http_connections_refused_total"))
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(status == 200)
    }

    @Test("MAX_CONNECTIONS the descriptor limit cannot hold stops start-up naming it; by default the cap fits the limit")
    func connectionCapacity() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let environment = ["HOST": "127.0.0.1", "PORT": "0", "DATABASE_URL": "sqlite:" + directory.file("c.db"), "MIN_FREE_DISK_MB": "1"]
        let refused = try await CortexProcess.runToCompletion(
            "/usr/bin/prlimit", ["--nofile=2048:2048", CortexProcess.binary, "serve"],
            environment: environment.merging(["MAX_CONNECTIONS": "5000"]) { _, new in new }, timeout: .seconds(60))
        #expect(refused.status == 78, "\(refused.stderr)")
        #expect(refused.stderr.contains("MAX_CONNECTIONS") && refused.stderr.contains("at most 1024"), "\(refused.stderr)")
        let fitted = try CortexProcess(
            arguments: ["--nofile=2048:2048", CortexProcess.binary, "serve"], environment: environment, binary: "/usr/bin/prlimit")
        defer { fitted.terminate() }
        var started: [String: Any]?
        for _ in 0..<600 where started == nil {
            started = fitted.logEvents.first { $0["event"] as? String == "SERVER_STARTED" }
            if started == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(started?["max_connections"] as? Int == 1024, "\(fitted.stdout.suffix(500))")
    }

    /// Cortex as `nobody` (for whom file modes apply) in a directory of its own, billing
    /// lead-scoring; the binary and model are copied in, as `nobody` may not enter the checkout.
    static func unprivilegedServer(_ directory: TemporaryDirectory) async throws -> (CortexProcess, port: Int) {
        chown(directory.path, 65534, 65534)
        let binary = directory.file("cortex")
        try FileManager.default.copyItem(atPath: CortexProcess.binary, toPath: binary)
        try FileManager.default.copyItem(atPath: Repository.leadScoring, toPath: directory.file("lead-scoring"))
        return try await CortexProcess.serve(
            environment: [
                "MODEL_PATH": directory.file("lead-scoring"), "MODEL_PRICES": "lead-scoring=0.01", "READINESS_INTERVAL_S": "0.2",
            ],
            directory: directory, user: 65534, binary: binary, workingDirectory: directory.path)
    }

    @Test(
        "SQLite's shared-memory file truncated, or made read-only, under a running server: no crash; /ready and billed requests 503",
        .enabled(if: getuid() == 0, "needs root to run the server as an unprivileged user, for whom file modes apply"),
        arguments: ["truncated", "read-only"]
    )
    func sharedMemoryFile(change: String) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await Self.unprivilegedServer(directory)
        defer { cortex.terminate() }
        let score = { try RawHTTPConnection.request(port: port, method: "POST", path: "/api/v1/score", body: LedgerLoadTests.lead) }
        #expect(try score()?.status == 200)
        let shm = directory.file("cortex.db") + "-shm"
        if change == "truncated" { #expect(truncate(shm, 0) == 0) } else { #expect(chmod(shm, 0o444) == 0) }
        // Billed requests, and reads of the balance once the key's cache has expired, are refused.
        for _ in 0..<3 {
            let billed = try #require(try score(), "no answer; the server said: \(cortex.stdout.suffix(1500))")
            #expect(billed.status == 503, "\(billed.body)")
            #expect(billed.body.contains("billing_unavailable") || billed.body.contains("database_unavailable"), "\(billed.body)")
        }
        let ready = try #require(try RawHTTPConnection.request(port: port, path: "/ready"))
        #expect(ready.status == 503)
        #expect(ready.body.contains(#""failing":["database"]"#), "\(ready.body)")
        #expect(ready.body.contains(change == "truncated" ? "truncated outside Cortex" : "not writable"), "\(ready.body)")
        #expect(try RawHTTPConnection.request(port: port, path: "/health")?.status == 200)
        #expect(cortex.process.isRunning, "no SIGBUS")
        if change == "read-only" {
            // Writable again: ready again, billed again.
            #expect(chmod(shm, 0o644) == 0)
            #expect(try RawHTTPConnection.request(port: port, path: "/ready")?.status == 200)
            #expect(try score()?.status == 200)
        }
    }

    @Test(
        "a model file truncated or deleted under a running server: it serves on from memory; /ready, /status and metrics say the disk differs"
    )
    func modelFileChanged() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let model = directory.file("vB.onnx")
        try FileManager.default.copyItem(atPath: Repository.path("models/vB.onnx"), toPath: model)
        try FileManager.default.copyItem(atPath: Repository.path("models/vB.yaml"), toPath: directory.file("vB.yaml"))
        let (cortex, port) = try await CortexProcess.serve(environment: ["MODEL_VB_PATH": model], directory: directory)
        defer { cortex.terminate() }
        try await ONNXServingTests.waitUntilReady(["vB"], port: port)
        let infer = {
            try RawHTTPConnection.request(
                port: port, method: "POST", path: "/v2/models/vB/infer",
                body:
                    #"{"inputs":[{"name":"image","shape":[1,1,8,8],"datatype":"FP32","data":[\#(Array(repeating: "0.5", count: 64).joined(separator: ","))]}]}"#
            )
        }
        let ready = try #require(try RawHTTPConnection.request(port: port, path: "/ready"))
        #expect(ready.body.contains(#""model_files":{"ok":true,"detail":"as loaded"}"#), "\(ready.body)")

        // Truncated: still ready, still serving, and said.
        let size = try #require(try FileManager.default.attributesOfItem(atPath: model)[.size] as? Int)
        #expect(truncate(model, 100) == 0)
        let truncated = try #require(try RawHTTPConnection.request(port: port, path: "/ready"))
        #expect(truncated.status == 200, "the loaded copy still serves")
        #expect(
            truncated.body.contains("vB: \(model) changed on disk since it was loaded (\(size) bytes then, 100 now)"), "\(truncated.body)")
        #expect(try infer()?.status == 200)
        let status = try #require(try RawHTTPConnection.request(port: port, path: "/status")).body
        let models = try #require(
            (try JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any])?["models"] as? [[String: Any]])
        #expect(models.first { $0["name"] as? String == "vB" }?["file"] as? String == "changed")
        #expect(models.first { $0["name"] as? String == "vA" }?["file"] as? String == "as_loaded")
        #expect(try RawHTTPConnection.request(port: port, path: "/metrics")?.body.contains(#"model_file_changed{model="vB"} 1"#) == true)

        // Deleted: the same, as missing.
        try FileManager.default.removeItem(atPath: model)
        let deleted = try #require(try RawHTTPConnection.request(port: port, path: "/ready"))
        #expect(deleted.status == 200)
        #expect(deleted.body.contains("\(model) is gone from disk"), "\(deleted.body)")
        let gone = try #require(try RawHTTPConnection.request(port: port, path: "/status")).body
        #expect(gone.contains(#""file":"missing""#), "\(gone)")
        #expect(try infer()?.status == 200)
        let deadline = ContinuousClock.now + .seconds(10)
        while cortex.logEvents.filter({ $0["event"] as? String == "MODEL_FILE_CHANGED" }).count < 2, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(cortex.logEvents.filter { $0["event"] as? String == "MODEL_FILE_CHANGED" && $0["model"] as? String == "vB" }.count == 2)
    }
}
