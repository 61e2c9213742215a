import CortexCore
import CortexRuntime
import Foundation
import Synchronization
import Testing

/// Ollama and OpenAI-compatible providers against fake upstreams that speak the real wire
/// formats, and the chain's fallback and circuit breakers.
@Suite("LLM providers and fallback (fake upstreams on loopback ports)")
struct LLMProviderTests {
    static let hello = ChatRequest(messages: [ChatMessage(role: "user", content: "Hello")], maxTokens: 16, temperature: 0.2)
    /// Generous: a busy machine must never time out a healthy fake (the timeout test sets its own).
    static let fast = ProviderTimeouts(connect: .seconds(15), firstToken: .seconds(20), total: .seconds(30))

    @Test("OpenAI-compatible: the request's wire format, the answer, usage, and the model list")
    func openAI() async throws {
        let server = try await FakeLLMServer(.answer("Hi there", usage: (prompt: 9, completion: 3)), models: ["gpt-x", "other"])
        let provider = OpenAICompatibleProvider(baseURL: server.url, model: "gpt-x", apiKey: "sk-test", timeouts: Self.fast)
        let response = try await provider.chat(Self.hello)
        #expect(response.text == "Hi there")
        #expect(response.usage == TokenUsage(promptTokens: 9, completionTokens: 3))
        #expect(response.finishReason == "stop")
        #expect(response.provider == "openai" && response.model == "gpt-x")
        let sent = try #require(server.requests.first)
        #expect(server.authorizations == ["Bearer sk-test"], "the key goes as a bearer token")
        #expect(sent["model"] as? String == "gpt-x")
        #expect(sent["max_tokens"] as? Int == 16)
        #expect(sent["stream"] as? Bool == false)
        #expect((sent["messages"] as? [[String: String]]) == [["role": "user", "content": "Hello"]])
        #expect(try await provider.listModels() == ["gpt-x", "other"])
    }

    @Test("Ollama: /api/chat with options.num_predict, eval counts as usage, /api/tags as the model list")
    func ollama() async throws {
        let server = try await FakeLLMServer(.answer("Hallo", usage: (prompt: 5, completion: 2)), models: ["gemma3:270m"])
        let provider = OllamaProvider(baseURL: server.url, model: "gemma3:270m", timeouts: Self.fast)
        let response = try await provider.chat(Self.hello)
        #expect(response.text == "Hallo")
        #expect(response.usage == TokenUsage(promptTokens: 5, completionTokens: 2))
        let sent = try #require(server.requests.first)
        #expect((sent["options"] as? [String: Any])?["num_predict"] as? Int == 16)
        #expect(sent["stream"] as? Bool == false)
        #expect(try await provider.listModels() == ["gemma3:270m"])
        server.set(.answer("no usage", usage: nil))
        #expect(try await provider.chat(Self.hello).usage == nil, "usage missing stays missing; billing decides")
    }

    @Test("errors map to what a chain needs: 5xx, 429, timeouts and a closed port fall back; the client's 4xx does not")
    func errors() async throws {
        let server = try await FakeLLMServer(.fail(status: 503, message: "overloaded"))
        let provider = OpenAICompatibleProvider(baseURL: server.url, model: "m", timeouts: Self.fast)
        await #expect(throws: ProviderError.upstream(status: 503, message: "overloaded")) { try await provider.chat(Self.hello) }
        server.set(.fail(status: 429, message: "slow down"))
        await #expect(throws: ProviderError.rateLimited("slow down")) { try await provider.chat(Self.hello) }
        server.set(.fail(status: 400, message: "bad messages"))
        await #expect(throws: ProviderError.rejected(status: 400, message: "bad messages")) { try await provider.chat(Self.hello) }
        #expect(!ProviderError.rejected(status: 400, message: "").fallsBack)
        server.set(.slow(.seconds(60), "late"))
        let impatient = OpenAICompatibleProvider(
            baseURL: server.url, model: "m", timeouts: ProviderTimeouts(connect: .seconds(5), firstToken: .seconds(1), total: .seconds(30)))
        do {
            _ = try await impatient.chat(Self.hello)
            Issue.record("a slow upstream answered within the timeout")
        } catch {
            guard case .timeout = error else { throw error }
        }
        let closed = OllamaProvider(baseURL: "http://127.0.0.1:1", model: "m", timeouts: Self.fast)
        do {
            _ = try await closed.chat(Self.hello)
            Issue.record("a closed port answered")
        } catch {
            #expect(error.fallsBack)
        }
    }

    @Test("chain: primary down, fallback answers; the breaker opens, skips the primary, probes after the cooldown and closes")
    func chain() async throws {
        let primary = try await FakeLLMServer(.fail(status: 500, message: "boom"))
        let fallback = try await FakeLLMServer(.answer("from fallback", usage: (prompt: 1, completion: 2)))
        let clock = Mutex<Int64>(0)
        let transitions = Mutex<[String]>([])
        let chain = ProviderChain(
            providers: [
                OllamaProvider(name: "ollama", baseURL: primary.url, model: "m", timeouts: Self.fast),
                OpenAICompatibleProvider(name: "openai", baseURL: fallback.url, model: "m", timeouts: Self.fast),
            ],
            breaker: CircuitBreaker(failureThreshold: 2, cooldown: .seconds(10)),
            now: { clock.withLock { $0 } },
            onTransition: { name, transition in transitions.withLock { $0.append("\(name) \(transition.rawValue)") } }
        )
        for _ in 0..<2 {
            let (response, failed) = try await chain.chat(Self.hello)
            #expect(response.text == "from fallback" && response.provider == "openai")
            #expect(failed.map(\.provider) == ["ollama"])
        }
        #expect(transitions.withLock { $0 } == ["ollama opened"])
        // Open: the primary is not even tried.
        let before = primary.requests.count
        let (_, skipped) = try await chain.chat(Self.hello)
        #expect(skipped == [ProviderChain.Attempt(provider: "ollama", error: .circuitOpen)])
        #expect(primary.requests.count == before)
        // The primary recovers; after the cooldown one probe goes through and closes the circuit.
        primary.set(.answer("from primary", usage: (prompt: 1, completion: 1)))
        clock.withLock { $0 = 10_000_000_000 }
        let (recovered, failed) = try await chain.chat(Self.hello)
        #expect(recovered.text == "from primary" && failed.isEmpty)
        #expect(transitions.withLock { $0 } == ["ollama opened", "ollama half_opened", "ollama closed"])
        #expect(chain.states == [.closed(failures: 0), .closed(failures: 0)])
    }

    @Test("chain: a client's 4xx is returned at once, without fallback; nobody answering lists every attempt")
    func chainErrors() async throws {
        let primary = try await FakeLLMServer(.fail(status: 400, message: "context too long"))
        let fallback = try await FakeLLMServer(.answer("never", usage: nil))
        let chain = ProviderChain(providers: [
            OpenAICompatibleProvider(baseURL: primary.url, model: "m", timeouts: Self.fast),
            OpenAICompatibleProvider(name: "backup", baseURL: fallback.url, model: "m", timeouts: Self.fast),
        ])
        await #expect(
            throws: ProviderChain.Refused(provider: "openai", error: .rejected(status: 400, message: "context too long"), failed: [])
        ) { try await chain.chat(Self.hello) }
        #expect(fallback.requests.isEmpty)
        primary.set(.fail(status: 502, message: "bad gateway"))
        fallback.set(.fail(status: 503, message: "down too"))
        do {
            _ = try await chain.chat(Self.hello)
            Issue.record("nobody should have answered")
        } catch let error as ProviderChain.Unavailable {
            #expect(error.attempts.map(\.provider) == ["openai", "backup"])
            #expect(error.description.contains("bad gateway") && error.description.contains("down too"))
        }
    }

    /// An Ollama or OpenAI-compatible provider of model `m` on `server`.
    static func provider(ollama: Bool, _ server: FakeLLMServer) -> any LLMProvider {
        ollama
            ? OllamaProvider(baseURL: server.url, model: "m", timeouts: fast)
            : OpenAICompatibleProvider(baseURL: server.url, model: "m", timeouts: fast)
    }

    static func collect(_ deltas: ChatDeltaStream) async -> (text: String, last: ChatDelta?, error: (any Error)?) {
        var text = ""
        var last: ChatDelta?
        do {
            for try await delta in deltas {
                text += delta.text
                last = delta
            }
            return (text, last, nil)
        } catch {
            return (text, last, error)
        }
    }

    @Test("streaming in both wire formats: every token in order, then finish reason and usage", arguments: [false, true])
    func streaming(ollama: Bool) async throws {
        let server = try await FakeLLMServer(.answer("one two three four", usage: (prompt: 4, completion: 4)))
        let provider = Self.provider(ollama: ollama, server)
        let (text, last, error) = await Self.collect(try await provider.streamChat(Self.hello))
        #expect(error == nil)
        #expect(text == "one two three four")
        #expect(last?.finishReason == "stop")
        #expect(last?.usage == TokenUsage(promptTokens: 4, completionTokens: 4))
        #expect(server.requests.first?["stream"] as? Bool == true)
        if !ollama {
            #expect((server.requests.first?["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
        }
    }

    @Test("a prompt goes to Ollama's /api/generate and OpenAI's /v1/completions, whole and streamed", arguments: [false, true])
    func prompts(ollama: Bool) async throws {
        let server = try await FakeLLMServer(.answer("upon a time", usage: (prompt: 2, completion: 3)))
        let provider = Self.provider(ollama: ollama, server)
        let request = ChatRequest(prompt: "Once", maxTokens: 8)
        let response = try await provider.chat(request)
        #expect(response.text == "upon a time")
        #expect(response.usage == TokenUsage(promptTokens: 2, completionTokens: 3))
        let sent = try #require(server.requests.last)
        #expect(sent["prompt"] as? String == "Once" && sent["messages"] == nil)
        let (text, last, error) = await Self.collect(try await provider.streamChat(request))
        #expect(error == nil && text == "upon a time")
        #expect(last?.usage == TokenUsage(promptTokens: 2, completionTokens: 3))
    }

    @Test("a stream that fails or stays silent before its first token falls back; after it, a cut ends the stream with an error")
    func streamFallback() async throws {
        let primary = try await FakeLLMServer(.fail(status: 503, message: "loading"))
        let fallback = try await FakeLLMServer(.answer("from the fallback", usage: nil))
        let impatient = ProviderTimeouts(connect: .seconds(5), firstToken: .seconds(1), total: .seconds(30))
        let chain = ProviderChain(providers: [
            OllamaProvider(name: "ollama", baseURL: primary.url, model: "m", timeouts: impatient),
            OpenAICompatibleProvider(name: "openai", baseURL: fallback.url, model: "m", timeouts: Self.fast),
        ])
        // 503 before the first token.
        var (deltas, provider, failed) = try await chain.streamChat(Self.hello)
        #expect(provider == "openai" && failed.map(\.provider) == ["ollama"])
        #expect(await Self.collect(deltas).text == "from the fallback")
        // A head, then silence past the first-token timeout.
        primary.set(.silent(.seconds(3)))
        (deltas, provider, failed) = try await chain.streamChat(Self.hello)
        #expect(provider == "openai")
        guard case .timeout = failed.first?.error else {
            Issue.record("expected a first-token timeout, got \(failed)")
            return
        }
        // Cut after two tokens: the stream is the primary's; it ends with an error after the text delivered.
        let direct = OllamaProvider(baseURL: primary.url, model: "m", timeouts: Self.fast)
        primary.set(.cut("alpha beta gamma delta", words: 2))
        var cut = try await direct.streamChat(Self.hello).makeAsyncIterator()
        var text = ""
        while text != "alpha beta ", let delta = try await cut.next() { text += delta.text }
        #expect(text == "alpha beta ")
        primary.releaseCut()
        await #expect(throws: (any Error).self, "a cut stream ends with an error, not as if complete") {
            while let delta = try await cut.next() { text += delta.text }
        }
        #expect(text == "alpha beta ")
    }

    @Test("20 streams at once to one provider all get their first token: the client is not limited to 8 connections per host")
    func concurrentStreams() async throws {
        // Each stream sends a word, then holds its connection open until released.
        let server = try await FakeLLMServer(.broken("hello there", words: 1))
        let provider = OpenAICompatibleProvider(baseURL: server.url, model: "m", timeouts: Self.fast)
        let started = try await withThrowingTaskGroup(of: ChatDeltaStream.self) { group in
            for _ in 0..<20 { group.addTask { try await provider.streamChat(Self.hello) } }
            var streams: [ChatDeltaStream] = []
            for try await stream in group { streams.append(stream) }
            return streams
        }
        #expect(started.count == 20)
        #expect(server.requests.count == 20, "every stream reached the provider while the others were open")
        server.releaseCut()
        for stream in started {
            let (text, _, error) = await Self.collect(stream)
            #expect(text == "hello " && error != nil)
        }
    }

    @Test("the total timeout ends an answer that keeps coming, streamed or whole, on both wire formats", arguments: [false, true])
    func totalTimeout(ollama: Bool) async throws {
        // 50 words 100 ms apart take 5 s; the total timeout is 2 s.
        let server = try await FakeLLMServer(.trickle(words: 50, every: .milliseconds(100)))
        let timeouts = ProviderTimeouts(connect: .seconds(5), firstToken: .seconds(20), total: .seconds(2))
        let provider: any LLMProvider =
            ollama
            ? OllamaProvider(baseURL: server.url, model: "m", timeouts: timeouts)
            : OpenAICompatibleProvider(baseURL: server.url, model: "m", timeouts: timeouts)
        let failure: ProviderError?
        do {
            let (text, _, error) = await Self.collect(try await provider.streamChat(Self.hello))
            #expect(text.hasPrefix("w0 ") && !text.contains("w49"), "cut short: \(text)")
            failure = error as? ProviderError
        } catch {
            // A machine too busy to deliver the first word within 2 s: the timeout ends it before the first token.
            failure = error
        }
        guard case .timeout(let what) = failure else {
            Issue.record("expected a total timeout, got \(String(describing: failure))")
            return
        }
        #expect(what.contains("total"))
        // A whole answer that keeps coming is cut the same way.
        do {
            let answer = try await provider.chat(Self.hello)
            Issue.record("a 5 s answer came back within a 2 s total timeout: \(answer.text.prefix(40))")
        } catch {
            guard case .timeout(let what) = error else {
                Issue.record("expected a total timeout, got \(error)")
                return
            }
            #expect(what.contains("total"))
        }
    }

    @Test("warming: polls the primary's model list and promotes to primary without a restart; Ollama's :latest counts")
    func warming() async throws {
        let primary = try await FakeLLMServer(.answer("hi", usage: nil), models: ["other:1b"])
        let changes = Mutex<[String]>([])
        let warmup = PrimaryWarmup(
            primary: OllamaProvider(baseURL: primary.url, model: "gemma3", timeouts: Self.fast), hasFallback: true,
            interval: .milliseconds(20), budget: .seconds(60),
            onChange: { path, _ in changes.withLock { $0.append(path.rawValue) } })
        #expect(warmup.path == .warming && !warmup.primaryModelPresent)
        #expect(await warmup.poll() == false)
        #expect(warmup.path == .warming)
        let running = Task { await warmup.run() }
        primary.set(models: ["other:1b", "gemma3:latest"])
        await running.value
        #expect(warmup.path == .primary && warmup.primaryModelPresent)
        #expect(changes.withLock { $0 } == ["primary"])
        #expect(PrimaryWarmup.contains(["gemma3:270m"], model: "gemma3:270m"))
        #expect(!PrimaryWarmup.contains(["gemma3:270m"], model: "gemma3"))
    }

    @Test("warming: the poll budget spent without the model switches to the fallback; without one it stays warming")
    func warmingBudget() async throws {
        let primary = try await FakeLLMServer(.answer("hi", usage: nil), models: [])
        for hasFallback in [true, false] {
            let warmup = PrimaryWarmup(
                primary: OpenAICompatibleProvider(baseURL: primary.url, model: "m", timeouts: Self.fast), hasFallback: hasFallback,
                interval: .milliseconds(10), budget: .milliseconds(50))
            await warmup.run()
            #expect(warmup.path == (hasFallback ? .fallback : .warming))
            #expect(!warmup.primaryModelPresent)
        }
        let unreachable = PrimaryWarmup(
            primary: OllamaProvider(baseURL: "http://127.0.0.1:1", model: "m", timeouts: Self.fast), hasFallback: true,
            interval: .milliseconds(10), budget: .milliseconds(30))
        await unreachable.run()
        #expect(unreachable.path == .fallback)
        #expect(unreachable.lastError?.contains("unreachable") == true)
    }
}
