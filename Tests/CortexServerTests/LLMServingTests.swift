import CortexCore
import CortexRuntime
import CortexServer
import Foundation
import Glibc
import Hummingbird
import HummingbirdTesting
import Testing

/// The LLM routes end to end: Cortex in front of fake Ollama and OpenAI-compatible upstreams on
/// loopback ports that speak the real wire formats.
@Suite("LLM routes: generate, chat, OpenAI-compatible, fallback, warming, per-token billing")
struct LLMServingTests {
    static var demo: HTTPFields { [.xAPIKey: CortexConfiguration.demoAPIKey] }

    /// A server whose LLM deployment `chat` has `primary` (Ollama) and optionally `fallback` (OpenAI).
    static func server(
        primary: FakeLLMServer, fallback: FakeLLMServer? = nil, billed: Bool = false, credits: String = "1", clock: ManualClock? = nil,
        configure: (inout CortexConfiguration) -> Void = { _ in }
    ) async throws -> TestServer {
        try await TestServer.make(clock: clock) { configuration in
            configuration.llm.primary = .init(kind: .ollama, url: primary.url, model: "gemma3:270m", apiKey: nil)
            if let fallback {
                configuration.llm.fallback = .init(kind: .openai, url: fallback.url, model: "gpt-fake", apiKey: "sk-fallback")
            }
            configuration.llm.pollIntervalSeconds = 0.02
            // Generous: a loopback connect or answer can wait seconds for a busy test process's event
            // loops, and must not count as the provider failing (tests that want timeouts set their own).
            configuration.llm.connectTimeoutSeconds = 15
            configuration.llm.firstTokenTimeoutSeconds = 20
            if billed {
                configuration.auth.requireAPIKey = true
                configuration.auth.demo = .on
                configuration.billing.demoCredits = Credits(decimal: credits) ?? .zero
                // 1 credit per 1,000 prompt tokens, 2 per 1,000 generated.
                configuration.llm.inputPricePer1K = Credits(decimal: "1") ?? .zero
                configuration.llm.outputPricePer1K = Credits(decimal: "2") ?? .zero
            }
            configure(&configuration)
        }
    }

    /// Waits (bounded) until every deployment's path is `path`.
    static func wait(for path: LLMPath, _ server: TestServer) async throws {
        let gateways = server.dependencies.llmGateways
        let deadline = ContinuousClock.now + .seconds(30)
        while !gateways.allSatisfy({ $0.warmup.path == path }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        try #require(!gateways.isEmpty && gateways.allSatisfy { $0.warmup.path == path })
    }

    static func balance(_ client: some TestClientProtocol) async throws -> Decimal? {
        (try await client.get("/me", headers: demo).body.jsonObject["balance"] as? NSNumber)?.decimalValue
    }

    /// The `data:` payloads of a server-sent event stream.
    static func events(_ body: String) -> [String] {
        body.components(separatedBy: "\n").filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
    }

    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    @Test("generate, chat and the OpenAI routes answer from the primary in their own shapes; /v1/models lists the deployment")
    func shapes() async throws {
        let primary = try await FakeLLMServer(.answer("Hello there", usage: (prompt: 7, completion: 2)), models: ["gemma3:270m"])
        let server = try await Self.server(primary: primary)
        try await server.test { client in
            try await Self.wait(for: .primary, server)
            let generated = try await client.post("/generate", json: #"{"prompt":"Say hello","max_tokens":5}"#)
            #expect(generated.status == .ok)
            let body = generated.body.jsonObject
            #expect(body["text"] as? String == "Hello there")
            #expect(body["provider"] as? String == "primary-ollama" && body["path"] as? String == "primary")
            #expect((body["usage"] as? [String: Int]) == ["prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9])
            // Upstream: Ollama's /api/generate with the prompt, the model and num_predict.
            let sent = try #require(primary.requests.last)
            #expect(sent["prompt"] as? String == "Say hello" && sent["model"] as? String == "gemma3:270m")
            #expect((sent["options"] as? [String: Any])?["num_predict"] as? Int == 5)

            let chat = try await client.post("/chat", json: #"{"message":"Hi"}"#).body.jsonObject
            #expect(chat["reply"] as? String == "Hello there")
            #expect((primary.requests.last?["messages"] as? [[String: String]]) == [["role": "user", "content": "Hi"]])

            let completion = try await client.post(
                "/v1/chat/completions",
                json:
                    #"{"model":"chat","messages":[{"role":"system","content":"Be brief"},{"role":"user","content":[{"type":"text","text":"Hi"}]}]}"#
            ).body.jsonObject
            #expect(completion["object"] as? String == "chat.completion" && completion["model"] as? String == "chat")
            let choice = (completion["choices"] as? [[String: Any]])?.first
            #expect((choice?["message"] as? [String: String])?["content"] == "Hello there")
            #expect(choice?["finish_reason"] as? String == "stop")
            #expect((completion["usage"] as? [String: Int])?["total_tokens"] == 9)
            // The default max_tokens went upstream.
            #expect((primary.requests.last?["options"] as? [String: Any])?["num_predict"] as? Int == 256)

            let text = try await client.post("/v1/completions", json: #"{"model":"gemma3:270m","prompt":"Once"}"#).body.jsonObject
            #expect(text["object"] as? String == "text_completion")
            #expect((text["choices"] as? [[String: Any]])?.first?["text"] as? String == "Hello there")

            let models = try await client.get("/v1/models").body.jsonObject
            #expect((models["data"] as? [[String: Any]])?.map { $0["id"] as? String } == ["chat"])
            #expect(try await client.get("/v1/models/chat").status == .ok)

            let unknown = try await client.post(
                "/v1/chat/completions", json: #"{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}"#)
            #expect(unknown.status == .notFound)
            let error = unknown.body.jsonObject["error"] as? [String: Any]
            #expect(error?["code"] as? String == "model_not_found" && error?["type"] as? String == "invalid_request_error")
        }
    }

    @Test("bad input is a 4xx naming the field; nothing is sent upstream, held or charged")
    func badInput() async throws {
        let primary = try await FakeLLMServer(.answer("never", usage: (prompt: 1, completion: 1)), models: ["gemma3:270m"])
        let server = try await Self.server(primary: primary, billed: true)
        try await server.test { client in
            try await Self.wait(for: .primary, server)
            let before = try await Self.balance(client)
            let cases: [(String, String, Int, String)] = [
                ("/generate", #"{}"#, 400, "prompt"),
                ("/generate", #"{"prompt":""}"#, 422, "prompt"),
                ("/generate", #"{"prompt":"x","max_tokens":0}"#, 422, "max_tokens"),
                ("/generate", #"{"prompt":"x","max_tokens":100000}"#, 422, "max_tokens"),
                ("/generate", #"{"prompt":"x","temperature":9}"#, 400, "temperature"),
                ("/generate", #"{"prompt":"x","stream":"yes"}"#, 400, "stream"),
                ("/chat", #"{"messages":[]}"#, 422, "messages"),
                ("/chat", #"{"messages":[{"role":"wizard","content":"x"}]}"#, 422, "role"),
                ("/chat", #"{"messages":[{"role":"user"}]}"#, 400, "content"),
                ("/chat", #"{"messages":"#, 400, "malformed"),
                ("/v1/chat/completions", #"{"messages":[{"role":"user","content":"x"}]}"#, 400, "model"),
                ("/v1/chat/completions", #"{"model":"chat","n":2,"messages":[{"role":"user","content":"x"}]}"#, 422, "'n'"),
                (
                    "/v1/chat/completions", #"{"model":"chat","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#, 422,
                    "image_url"
                ),
            ]
            for (route, body, status, mention) in cases {
                let response = try await client.post(route, json: body, headers: Self.demo)
                #expect(response.status.code == status, "\(route) \(body)")
                #expect(response.body.text.contains(mention), "\(route) \(body): \(response.body.text)")
            }
            var streamed = Self.demo
            streamed[.idempotencyKey] = "k-1"
            #expect(try await client.post("/generate", json: #"{"prompt":"x","stream":true}"#, headers: streamed).status == .badRequest)
            #expect(primary.requests.isEmpty)
            #expect(try await Self.balance(client) == before)
        }
    }

    @Test("primary down: the fallback answers, the breaker opens and skips the primary, then a probe after the cooldown closes it")
    func fallback() async throws {
        let primary = try await FakeLLMServer(.fail(status: 503, message: "loading"), models: ["gemma3:270m"])
        let fallback = try await FakeLLMServer(.answer("from the fallback", usage: (prompt: 3, completion: 3)))
        // The breakers' clock is moved by hand: a busy machine cannot let the cooldown pass early.
        let clock = ManualClock()
        let server = try await Self.server(primary: primary, fallback: fallback, clock: clock) { configuration in
            configuration.llm.breakerFailures = 2
            configuration.llm.breakerCooldownSeconds = 10
        }
        try await server.test { client in
            try await Self.wait(for: .primary, server)
            for _ in 0..<3 {
                let body = try await client.post("/generate", json: #"{"prompt":"hi"}"#).body.jsonObject
                #expect(body["text"] as? String == "from the fallback" && body["provider"] as? String == "fallback-openai")
            }
            // Two failures opened the circuit: the third request never reached the primary.
            #expect(primary.requests.count == 2)
            #expect(fallback.requests.last?["model"] as? String == "gpt-fake")
            // The fallback's key from the configuration reaches it; the Ollama primary gets none.
            #expect(fallback.authorizations.allSatisfy { $0 == "Bearer sk-fallback" } && !fallback.authorizations.isEmpty)
            #expect(primary.authorizations.allSatisfy { $0 == nil })
            let summary = try await client.get("/api/status/summary")
            #expect(summary.headers[.xStatusPath] == "api")
            let llm = summary.body.jsonObject["llm"] as? [String: Any]
            #expect(llm?["fallback"] as? Bool == true)
            #expect((llm?["providers"] as? [[String: Any]])?.map { $0["circuit"] as? String } == ["open", "closed"])
            var metrics = try await client.get("/metrics").body.text
            #expect(metrics.contains(#"llm_fallback_total{deployment="chat",from="primary-ollama",to="fallback-openai"} 3"#))
            #expect(metrics.contains(#"llm_requests_total{deployment="chat",provider="primary-ollama",outcome="error"} 2"#))
            #expect(metrics.contains(#"llm_requests_total{deployment="chat",provider="primary-ollama",outcome="circuit_open"} 1"#))
            #expect(metrics.contains(#"llm_provider_up{deployment="chat",provider="primary-ollama"} 0"#))
            #expect(server.logs.events(named: "LLM_FALLBACK").count == 3)
            #expect(server.logs.events(named: "LLM_BREAKER").first?.metadata["transition"] == "opened")

            // The primary recovers; once the cooldown has passed, one probe closes the circuit.
            primary.set(.answer("from the primary", usage: (prompt: 1, completion: 1)))
            clock.advance(milliseconds: 10_000)
            let recovered = try await client.post("/generate", json: #"{"prompt":"hi"}"#).body.jsonObject
            #expect(recovered["provider"] as? String == "primary-ollama")
            metrics = try await client.get("/metrics").body.text
            #expect(metrics.contains(#"llm_provider_up{deployment="chat",provider="primary-ollama"} 1"#))
            #expect(
                server.logs.events(named: "LLM_BREAKER").map { $0.metadata["transition"] ?? "" } == ["opened", "half_opened", "closed"])
            let after = try await client.get("/status/summary")
            #expect(after.headers[.xStatusPath] == "legacy")
            #expect((after.body.jsonObject["status"] as? [String: Any])?["fallback"] as? Bool == false)
        }
    }

    @Test("primary slow past the first-token timeout: the fallback answers; nobody answering is a 503 naming every attempt")
    func slowPrimary() async throws {
        let primary = try await FakeLLMServer(.slow(.seconds(60), "late"), models: ["gemma3:270m"])
        let fallback = try await FakeLLMServer(.answer("quick", usage: nil))
        let server = try await Self.server(primary: primary, fallback: fallback) { configuration in
            // The same timeout bounds the fallback's answer: long enough that a loaded machine
            // (this suite runs beside the process tests) never makes the fallback look slow too.
            configuration.llm.firstTokenTimeoutSeconds = 8
        }
        try await server.test { client in
            try await Self.wait(for: .primary, server)
            let body = try await client.post("/v1/completions", json: #"{"model":"chat","prompt":"hi"}"#).body.jsonObject
            #expect((body["choices"] as? [[String: Any]])?.first?["text"] as? String == "quick")
            #expect(server.logs.events(named: "LLM_FALLBACK").first?.metadata["reason"]?.contains("timed out") == true)

            fallback.set(.fail(status: 500, message: "also down"))
            primary.set(.fail(status: 502, message: "bad gateway"))
            let down = try await client.post("/generate", json: #"{"prompt":"hi"}"#)
            #expect(down.status == .serviceUnavailable)
            #expect(down.headers[.retryAfter] != nil)
            #expect(down.body.jsonObject["code"] as? String == "llm_unavailable")
            #expect(down.body.text.contains("bad gateway") && down.body.text.contains("also down"))
            #expect(server.logs.events(named: "LLM_UNAVAILABLE").count == 1)
        }
    }

    @Test("a client's 4xx from the provider passes through as a 4xx without fallback")
    func rejected() async throws {
        let primary = try await FakeLLMServer(.fail(status: 400, message: "context length exceeded"), models: ["gemma3:270m"])
        let fallback = try await FakeLLMServer(.answer("never", usage: nil))
        let server = try await Self.server(primary: primary, fallback: fallback)
        try await server.test { client in
            try await Self.wait(for: .primary, server)
            let response = try await client.post("/generate", json: #"{"prompt":"hi"}"#)
            #expect(response.status == .badRequest)
            #expect(response.body.jsonObject["code"] as? String == "llm_rejected")
            #expect(response.body.text.contains("context length exceeded") && response.body.text.contains("primary-ollama"))
            #expect(fallback.requests.isEmpty)
            let metrics = try await client.get("/metrics").body.text
            #expect(metrics.contains(#"llm_requests_total{deployment="chat",provider="primary-ollama",outcome="rejected"} 1"#))
        }
    }

    @Test("warming without a fallback: not ready and 503 with Retry-After; the model arrives and the primary serves without a restart")
    func warming() async throws {
        let primary = try await FakeLLMServer(.answer("warm now", usage: (prompt: 1, completion: 2)), models: [])
        let server = try await Self.server(primary: primary)
        try await server.test { client in
            let ready = try await client.get("/ready")
            #expect(ready.status == .serviceUnavailable)
            #expect((ready.body.jsonObject["failing"] as? [String]) == ["llm"])
            #expect(ready.body.text.contains("warming"))
            let summary = try await client.get("/api/status/summary").body.jsonObject
            let llm = summary["llm"] as? [String: Any]
            #expect(llm?["path"] as? String == "warming" && llm?["primary_model_present"] as? Bool == false)
            #expect(summary["ready"] as? Bool == false && summary["status_ready"] as? Int == 0)
            #expect((summary["build"] as? [String: Any])?["sha"] as? String == "unknown")
            let refused = try await client.post("/generate", json: #"{"prompt":"hi"}"#)
            #expect(refused.status == .serviceUnavailable)
            #expect(refused.body.jsonObject["code"] as? String == "llm_warming")
            #expect(refused.headers[.retryAfter] == "1")

            primary.set(models: ["gemma3:270m"])
            try await Self.wait(for: .primary, server)
            #expect(try await client.get("/ready").status == .ok)
            let promoted = try await client.get("/api/status/summary").body.jsonObject["llm"] as? [String: Any]
            #expect(promoted?["path"] as? String == "primary" && promoted?["primary_model_present"] as? Bool == true)
            #expect(try await client.post("/generate", json: #"{"prompt":"hi"}"#).body.jsonObject["text"] as? String == "warm now")
            #expect(server.logs.events(named: "LLM_PATH_CHANGED").map { $0.metadata["path"] ?? "" } == ["primary"])
        }
    }

    @Test("warming with a fallback: ready, and the fallback answers until the primary has its model")
    func warmingWithFallback() async throws {
        let primary = try await FakeLLMServer(.answer("primary", usage: nil), models: ["other"])
        let fallback = try await FakeLLMServer(.answer("fallback", usage: nil))
        let server = try await Self.server(primary: primary, fallback: fallback)
        try await server.test { client in
            #expect(try await client.get("/ready").status == .ok)
            let answer = try await client.post("/chat", json: #"{"message":"hi"}"#).body.jsonObject
            #expect(answer["reply"] as? String == "fallback" && answer["path"] as? String == "warming", "\(answer)")
            #expect(primary.requests.isEmpty, "a warming primary is not asked")
            primary.set(models: ["gemma3:270m"])
            try await Self.wait(for: .primary, server)
            #expect(try await client.post("/chat", json: #"{"message":"hi"}"#).body.jsonObject["reply"] as? String == "primary")
        }
    }

    @Test("streaming in OpenAI's format: the role, each token, the finish reason, the usage when asked, then [DONE]")
    func streamOpenAI() async throws {
        let primary = try await FakeLLMServer(.answer("one two three", usage: (prompt: 5, completion: 3)), models: ["gemma3:270m"])
        let server = try await Self.server(primary: primary)
        try await server.test { client in
            try await Self.wait(for: .primary, server)
            let response = try await client.post(
                "/v1/chat/completions",
                json:
                    #"{"model":"chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"count"}]}"#
            )
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/event-stream")
            let events = Self.events(response.body.text)
            #expect(events.last == "[DONE]")
            let chunks = events.dropLast().map(Self.json)
            #expect(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" && $0["model"] as? String == "chat" })
            let deltas = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any] }
            #expect(deltas.first?["role"] as? String == "assistant")
            #expect(deltas.compactMap { $0["content"] as? String }.joined() == "one two three")
            #expect(chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String } == ["stop"])
            #expect((chunks.last?["usage"] as? [String: Int]) == ["prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8])

            // Cortex's own stream for /generate: text events, then one done event with the usage.
            let generated = Self.events(try await client.post("/generate", json: #"{"prompt":"count","stream":true}"#).body.text)
                .map(Self.json)
            #expect(generated.compactMap { $0["text"] as? String }.joined() == "one two three")
            #expect(generated.last?["done"] as? Bool == true && generated.last?["provider"] as? String == "primary-ollama")
            let metrics = try await client.get("/metrics").body.text
            #expect(metrics.contains(#"llm_time_to_first_token_seconds_count{deployment="chat"} 2"#))
            // By deployment and the model of the provider that answered.
            #expect(metrics.contains(#"llm_tokens_total{deployment="chat",model="gemma3:270m",type="prompt"} 10"#))
            #expect(metrics.contains(#"llm_tokens_total{deployment="chat",model="gemma3:270m",type="completion"} 6"#))
        }
    }

    @Test("per-token credits: exact for reported usage; the held estimate when none is reported; a stream is billed at its end")
    func billing() async throws {
        let primary = try await FakeLLMServer(.answer("a b c", usage: (prompt: 9, completion: 3)), models: ["gemma3:270m"])
        let server = try await Self.server(primary: primary, billed: true, credits: "10")
        try await server.test { client in
            try await Self.wait(for: .primary, server)
            // 9 prompt tokens at 1/1k and 3 generated at 2/1k: 0.009 + 0.006.
            let known = try await client.post("/generate", json: #"{"prompt":"abc","max_tokens":50}"#, headers: Self.demo)
            #expect(known.status == .ok)
            #expect(known.headers[.xCreditsCharged] == "0.015")
            #expect(known.headers[.xCreditsBalance] == "9.985")
            #expect(try await Self.balance(client) == Decimal(string: "9.985"))

            // No usage: the estimate held, (3 bytes + 8) prompt tokens and 50 generated: 0.011 + 0.1.
            primary.set(.answer("a b c", usage: nil))
            let unknown = try await client.post("/generate", json: #"{"prompt":"abc","max_tokens":50}"#, headers: Self.demo)
            #expect(unknown.headers[.xCreditsCharged] == "0.111")
            #expect(unknown.body.jsonObject["usage_reported"] as? Bool == false)
            #expect(try await Self.balance(client) == Decimal(string: "9.874"))

            // A stream with usage: charged what the provider reported, told in the last event.
            primary.set(.answer("a b c", usage: (prompt: 9, completion: 3)))
            let stream = try await client.post("/generate", json: #"{"prompt":"abc","stream":true}"#, headers: Self.demo)
            let done = Self.events(stream.body.text).map(Self.json).last
            #expect((done?["credits_charged"] as? NSNumber)?.decimalValue == Decimal(string: "0.015"))
            #expect(try await Self.balance(client) == Decimal(string: "9.859"))
            let me = try await client.get("/me", headers: Self.demo).body.jsonObject
            #expect((me["held"] as? NSNumber)?.intValue == 0)
        }
    }

    @Test("concurrent streams cannot overrun a balance: holds cover the worst case; cut streams are billed for what they delivered")
    func concurrentStreams() async throws {
        let primary = try await FakeLLMServer(.broken("w1 w2 w3 w4", words: 2), models: ["gemma3:270m"])
        // Each request holds (5 bytes + 8 + 8 per message... here a prompt: 5 + 8 = 13) prompt
        // tokens and 100 generated: 0.013 + 0.2 = 0.213; a balance of 1 covers four holds.
        let server = try await Self.server(primary: primary, billed: true, credits: "1")
        try await server.test { client in
            try await Self.wait(for: .primary, server)
            let statuses = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for _ in 0..<12 {
                    group.addTask {
                        let response = try await client.post(
                            "/generate", json: #"{"prompt":"hello","max_tokens":100,"stream":true}"#, headers: Self.demo)
                        return (Int(response.status.code), response.body.text)
                    }
                }
                var results: [(Int, String)] = []
                // The eight refused return at once; the four held streams wait on the cut.
                for _ in 0..<8 {
                    if let result = try await group.next() { results.append(result) }
                }
                primary.releaseCut()
                for try await result in group { results.append(result) }
                return results
            }
            #expect(statuses.filter { $0.0 == 402 }.count == 8)
            let streams = statuses.filter { $0.0 == 200 }.map(\.1)
            #expect(streams.count == 4)
            for body in streams {
                #expect(Self.events(body).compactMap { Self.json($0)["text"] as? String }.joined() == "w1 w2 ")
                #expect(body.contains("event: error") && body.contains("stream_cut"))
                #expect(!body.contains(#""done":true"#), "a cut stream never looks complete")
            }
            // Each cut stream: 13 prompt tokens (no usage came) and the 2 delivered: 0.013 + 0.004.
            #expect(try await Self.balance(client) == Decimal(string: "0.932"))
            let me = try await client.get("/me", headers: Self.demo).body.jsonObject
            #expect((me["held"] as? NSNumber)?.intValue == 0)
            let metrics = try await client.get("/metrics").body.text
            #expect(metrics.contains(#"llm_requests_total{deployment="chat",provider="primary-ollama",outcome="cut"} 4"#))
            #expect(server.logs.events(named: "LLM_STREAM_CUT").count == 4)
        }
    }

    @Test("a client that leaves mid-stream stops the upstream request; the stream is billed for what was sent and nothing stays held")
    func clientLeaves() async throws {
        // 200 tokens 50 ms apart: the whole answer would take ten seconds.
        let primary = try await FakeLLMServer(.trickle(words: 200, every: .milliseconds(50)), models: ["gemma3:270m"])
        let server = try await Self.server(primary: primary, billed: true, credits: "10")
        try await server.test(live: true) { client in
            try await Self.wait(for: .primary, server)
            let port = try #require(client.port)
            let body = #"{"prompt":"hello","max_tokens":300,"stream":true}"#
            let request =
                "POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: \(CortexConfiguration.demoAPIKey)\r\n"
                + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let received = try await Self.readThenLeave(port: port, request: request, marker: "w2 ")
            #expect(received.hasPrefix("HTTP/1.1 200"))
            #expect(received.contains("w0 "))

            // The upstream sees its caller go: bounded well inside the ten seconds the answer takes.
            let deadline = ContinuousClock.now + .seconds(8)
            while primary.trickles.abandoned == 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(primary.trickles.abandoned == 1, "the upstream request is stopped, not read to its end")
            #expect(primary.trickles.finished == 0)

            // Settled, not left held: 13 prompt tokens (5 bytes + 8) and the tokens sent, at most the 300 held.
            var held: Int?
            let settled = ContinuousClock.now + .seconds(8)
            while held != 0, ContinuousClock.now < settled {
                held = (try await client.get("/me", headers: Self.demo).body.jsonObject["held"] as? NSNumber)?.intValue
                if held != 0 { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(held == 0)
            let balance = try #require(try await Self.balance(client))
            #expect(balance <= Decimal(string: "9.981")!, "at least the prompt and the three tokens read: 0.013 + 0.006")
            #expect(balance >= Decimal(string: "9.387")!, "at most the hold: 0.013 + 0.6")
        }
    }

    /// Sends `request` on a new loopback connection, reads until `marker` arrives, then closes the
    /// connection without reading further: a client that goes away mid-answer. Blocking socket
    /// calls, so on a thread of their own rather than the test's executor.
    static func readThenLeave(port: Int, request: String, marker: String) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try Self.blockingReadThenLeave(port: port, request: request, marker: marker) })
            }
        }
    }

    private static func blockingReadThenLeave(port: Int, request: String, marker: String) throws -> String {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(socket >= 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0)
        // A server that never answers ends the read instead of hanging the test.
        var timeout = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(request.utf8)
        try #require(send(socket, bytes, bytes.count, 0) == bytes.count)
        var received = ""
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !received.contains(marker) {
            let count = recv(socket, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            received += String(decoding: buffer[0..<count], as: UTF8.self)
        }
        return received
    }

    @Test("tokens per minute per key: a key past its budget gets 429 with Retry-After until it refills; another key is not affected")
    func tokenLimit() async throws {
        let primary = try await FakeLLMServer(.answer("a b c", usage: (prompt: 9, completion: 3)), models: ["gemma3:270m"])
        let clock = ManualClock()
        let server = try await TestServer.make(clock: clock) { configuration in
            configuration.llm.primary = .init(kind: .ollama, url: primary.url, model: "gemma3:270m")
            configuration.llm.pollIntervalSeconds = 0.02
            configuration.llm.connectTimeoutSeconds = 15
            configuration.llm.tokensPerMinute = 20
            configuration.auth.requireAPIKey = true
            configuration.auth.demo = .on
            configuration.auth.apiKeys = ["other-key-0123456789"]
        }
        try await server.test { client in
            try await Self.wait(for: .primary, server)
            // 12 tokens each: the first fits, the second is let in (8 left) and runs 4 past the budget.
            for _ in 0..<2 {
                #expect(try await client.post("/generate", json: #"{"prompt":"hi"}"#, headers: Self.demo).status == .ok)
            }
            let refused = try await client.post("/generate", json: #"{"prompt":"hi"}"#, headers: Self.demo)
            #expect(refused.status == .tooManyRequests)
            #expect(refused.body.jsonObject["code"] as? String == "token_rate_limited")
            // 4 tokens over at 20 a minute: 12 seconds.
            #expect(refused.headers[.retryAfter] == "12")
            #expect(primary.requests.count == 2, "a refused request never reaches the provider")
            #expect(
                try await client.post("/generate", json: #"{"prompt":"hi"}"#, headers: [.xAPIKey: "other-key-0123456789"]).status == .ok)
            clock.advance(milliseconds: 12_000)
            #expect(try await client.post("/generate", json: #"{"prompt":"hi"}"#, headers: Self.demo).status == .ok)
        }
    }

    @Test("several deployments: model picks the deployment; a chain of three falls through to its second fallback")
    func deployments() async throws {
        let chatPrimary = try await FakeLLMServer(.answer("from chat", usage: (prompt: 1, completion: 1)), models: ["gemma3:270m"])
        let first = try await FakeLLMServer(.fail(status: 503, message: "down"), models: ["qwen-coder"])
        let second = try await FakeLLMServer(.fail(status: 500, message: "also down"))
        let third = try await FakeLLMServer(.answer("from the third", usage: (prompt: 2, completion: 2)))
        let server = try await Self.server(primary: chatPrimary) { configuration in
            var coder = configuration.llm
            coder.deployment = "coder"
            coder.setProviders([
                .init(kind: .openai, url: first.url, model: "qwen-coder"), .init(kind: .openai, url: second.url, model: "backup"),
                .init(kind: .ollama, url: third.url, model: "qwen2.5-coder:1.5b"),
            ])
            configuration.moreLLMDeployments = [coder]
        }
        try await server.test { client in
            try await Self.wait(for: .primary, server)
            let models = try await client.get("/v1/models").body.jsonObject
            #expect((models["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["chat", "coder"])
            #expect(try await client.post("/generate", json: #"{"prompt":"hi"}"#).body.jsonObject["text"] as? String == "from chat")
            let coded = try await client.post("/generate", json: #"{"prompt":"hi","model":"coder"}"#).body.jsonObject
            #expect(coded["text"] as? String == "from the third" && coded["provider"] as? String == "fallback2-ollama")
            #expect(coded["model"] as? String == "coder")
            // A provider's model name selects its deployment too.
            let byProviderModel = try await client.post(
                "/v1/chat/completions", json: #"{"model":"qwen-coder","messages":[{"role":"user","content":"hi"}]}"#
            ).body.jsonObject
            #expect(
                (byProviderModel["choices"] as? [[String: Any]])?.first.flatMap { ($0["message"] as? [String: String])?["content"] }
                    == "from the third")
            #expect(try await client.post("/generate", json: #"{"prompt":"hi","model":"nope"}"#).status == .notFound)
            let summary = try await client.get("/api/status/summary").body.jsonObject
            #expect((summary["llm"] as? [String: Any])?["deployment"] as? String == "chat")
            #expect((summary["llm_deployments"] as? [[String: Any]])?.compactMap { $0["deployment"] as? String } == ["chat", "coder"])
            let metrics = try await client.get("/metrics").body.text
            #expect(metrics.contains(#"llm_fallback_total{deployment="coder",from="fallback-openai",to="fallback2-ollama"} 2"#))
        }
    }

    @Test("without an LLM the routes say what to set, and no model is listed")
    func notConfigured() async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            let response = try await client.post("/generate", json: #"{"prompt":"hi"}"#)
            #expect(response.status == .notFound)
            #expect(response.body.jsonObject["code"] as? String == "llm_not_configured")
            #expect(response.body.text.contains("LLM_PRIMARY_URL"))
            #expect((try await client.get("/v1/models").body.jsonObject["data"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("CORS on /chat: a preflight from an allowed origin passes without a key, others get 403; errors carry the header too")
    func cors() async throws {
        let primary = try await FakeLLMServer(.answer("hi", usage: nil), models: ["gemma3:270m"])
        let server = try await Self.server(primary: primary, billed: true) { configuration in
            configuration.server.corsOrigins = ["https://app.example.com"]
        }
        try await server.test { client in
            try await Self.wait(for: .primary, server)
            let preflight = try await client.execute(
                uri: "/chat", method: .options,
                headers: [.origin: "https://app.example.com", .accessControlRequestMethod: "POST"]
            ) { $0 }
            #expect(preflight.status == .noContent)
            #expect(preflight.headers[.accessControlAllowOrigin] == "https://app.example.com")
            #expect(preflight.headers[.accessControlAllowMethods]?.contains("POST") == true)
            #expect(preflight.headers[.accessControlAllowHeaders]?.contains("Authorization") == true)
            let stranger = try await client.execute(uri: "/chat", method: .options, headers: [.origin: "https://evil.example"]) { $0 }
            #expect(stranger.status == .forbidden)
            #expect(stranger.headers[.accessControlAllowOrigin] == nil)
            #expect(stranger.body.text.contains("CORS_ORIGINS"))

            let noKey = try await client.post("/chat", json: #"{"message":"hi"}"#, headers: [.origin: "https://app.example.com"])
            #expect(noKey.status == .unauthorized)
            #expect(noKey.headers[.accessControlAllowOrigin] == "https://app.example.com")
            var headers = Self.demo
            headers[.origin] = "https://app.example.com"
            let answer = try await client.post("/chat", json: #"{"message":"hi"}"#, headers: headers)
            #expect(answer.status == .ok)
            #expect(answer.headers[.accessControlAllowOrigin] == "https://app.example.com")
            #expect(answer.headers[.accessControlExposeHeaders]?.contains("X-Credits-Charged") == true)
        }
    }

    @Test("OpenAI's official Python client works against a real cortex process unchanged: models, chat, streamed chat, completion")
    func openAIClient() async throws {
        let upstream = try await FakeLLMServer(.answer("Hello from upstream", usage: (prompt: 12, completion: 4)), models: ["fake-model"])
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(
            environment: [
                "LLM_PRIMARY_URL": upstream.url, "LLM_PRIMARY_KIND": "openai", "LLM_PRIMARY_MODEL": "fake-model",
                "LLM_DEPLOYMENT": "assistant", "PRIMARY_POLL_INTERVAL_S": "0.05",
            ],
            directory: directory
        )
        defer { cortex.terminate() }
        try await CortexProcess.waitForPrimaryLLM(port: port)
        let (status, output) = try await ONNXServingTests.python([
            "Tests/Python/openai_check.py", "http://127.0.0.1:\(port)/v1", RawHTTPConnection.demoKey, "assistant", "Hello from upstream",
        ])
        #expect(status == 0, "\(output)")
        #expect(output.contains("openai: all checks passed"), "\(output)")
        // What the client sent reached the upstream as OpenAI's wire format, with the upstream's model name.
        #expect(upstream.requests.contains { $0["stream"] as? Bool == true && $0["model"] as? String == "fake-model" })
        #expect(upstream.requests.contains { $0["prompt"] as? String == "Once upon a time" })
    }

    @Test(
        "OpenAI's client through Cortex: tool calls, tool messages, streamed tool calls, JSON mode, stop, seed reach the provider and come back",
        arguments: ["openai", "ollama"])
    func openAIClientTools(kind: String) async throws {
        let upstream = try await FakeLLMServer(.tools(arguments: #"{"city":"Paris"}"#, text: "It is sunny"), models: ["fake-model"])
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(
            environment: [
                "LLM_PRIMARY_URL": upstream.url, "LLM_PRIMARY_KIND": kind, "LLM_PRIMARY_MODEL": "fake-model", "LLM_DEPLOYMENT": "assistant",
                "PRIMARY_POLL_INTERVAL_S": "0.05",
            ],
            directory: directory
        )
        defer { cortex.terminate() }
        try await CortexProcess.waitForPrimaryLLM(port: port)
        let (status, output) = try await ONNXServingTests.python([
            "Tests/Python/openai_tools_check.py", "http://127.0.0.1:\(port)/v1", RawHTTPConnection.demoKey, "assistant", kind,
        ])
        #expect(status == 0, "\(output)")
        #expect(output.contains("openai tools: all checks passed"), "\(output)")

        let raw = upstream.rawRequests
        let requests = upstream.requests
        // OpenAI: six requests; Ollama: five (the three it cannot honour never left Cortex).
        try #require(requests.count == (kind == "openai" ? 6 : 5), "\(raw)")
        let tools = try #require(requests[0]["tools"] as? [[String: Any]])
        #expect((tools.first?["function"] as? [String: Any])?["name"] as? String == "get_weather")
        #expect(((tools.first?["function"] as? [String: Any])?["parameters"] as? [String: Any])?["required"] as? [String] == ["city"])
        // The seed past 2^53 went on as the client wrote it: a double would have made it ...992.
        #expect(raw[0].contains("9007199254740993"), "\(raw[0])")
        let toolAnswer = try #require((requests[1]["messages"] as? [[String: Any]])?.last)
        let assistant = try #require((requests[1]["messages"] as? [[String: Any]])?[1])
        let sentCall = try #require((assistant["tool_calls"] as? [[String: Any]])?.first?["function"] as? [String: Any])
        #expect(toolAnswer["role"] as? String == "tool" && toolAnswer["content"] as? String == #"{"sky": "sunny"}"#)
        if kind == "openai" {
            #expect(requests[0]["tool_choice"] as? String == "auto" && requests[0]["top_p"] as? Double == 0.5)
            #expect(requests[0]["stop"] as? [String] == ["\n\n"] && requests[0]["max_tokens"] as? Int == 32)
            #expect(toolAnswer["tool_call_id"] as? String == "call_fake1", "\(toolAnswer)")
            #expect(sentCall["arguments"] as? String == #"{"city":"Paris"}"#)
            #expect((requests[2]["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
            #expect((requests[3]["response_format"] as? [String: Any])?["type"] as? String == "json_object")
            #expect(((requests[4]["response_format"] as? [String: Any])?["json_schema"] as? [String: Any])?["name"] as? String == "weather")
            #expect(requests[5]["logprobs"] as? Bool == true && requests[5]["user"] as? String == "user-7")
            #expect((requests[5]["logit_bias"] as? [String: Any])?["50256"] as? Int == -100)
            #expect(requests[5]["presence_penalty"] as? Double == 0.5 && requests[5]["frequency_penalty"] as? Double == 0.25)
        } else {
            let options = try #require(requests[0]["options"] as? [String: Any])
            #expect(options["stop"] as? [String] == ["\n\n"] && options["top_p"] as? Double == 0.5 && options["num_predict"] as? Int == 32)
            #expect(requests[0]["tool_choice"] == nil, "Ollama's body has no tool_choice")
            // Ollama takes the arguments as an object and matches a tool's answer by the tool's name.
            #expect((sentCall["arguments"] as? [String: Any])?["city"] as? String == "Paris", "\(raw[1])")
            #expect(toolAnswer["tool_name"] as? String == "get_weather", "\(toolAnswer)")
            #expect(requests[3]["format"] as? String == "json")
            #expect(((requests[4]["format"] as? [String: Any])?["properties"] as? [String: Any])?["sky"] != nil, "\(raw[4])")
        }
    }
}
