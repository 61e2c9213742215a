import CortexCore
import CortexRuntime
import Foundation
import Testing

@testable import CortexRuntime

/// Cortex's WordPiece tokenizer and sentence embeddings against Hugging Face's stack on the same
/// model (all-MiniLM-L6-v2, fetched by scripts/embedding-model.sh): token ids equal to the
/// `tokenizers` package's, vectors within 1e-5 cosine of ONNX Runtime's with sentence-transformers'
/// pooling, both computed here on this machine (Tests/Python/embedding_reference.py).
@Suite("Embeddings: tokenizer and vectors against Hugging Face's")
struct EmbeddingTests {
    static let directory = Repository.path("models/embeddings/all-MiniLM-L6-v2")

    /// Text that trips tokenizers: accents and combining marks, CJK, Korean, Thai, Arabic,
    /// Devanagari, punctuation and symbols, emoji (with a joiner), control characters, full-width
    /// forms, case mappings without a one-to-one lower case, a word over 100 characters, and a
    /// text longer than the model's 256 tokens.
    static let corpus: [String] = [
        "Hello, world!", "The café's crème brûlée — naïve façade.", "e\u{301}le\u{300}ve", "北京欢迎你，东京も。", "안녕하세요 세계",
        "สวัสดีครับ", "مرحبا بالعالم", "नमस्ते दुनिया", "Price: $1,299.99 (≈ €1.2k) + 5% tax; #1 @home ^_^ ~x|y`z",
        "I 💖 emoji 👩‍💻 and 🇫🇷 flags", "tab\there\nnew\rline\u{0}null\u{7}bell\u{200B}zero-width\u{FEFF}bom",
        "ＦＵＬＬ　ｗｉｄｔｈ　１２３", "İstanbul ΣΊΣΥΦΟΣ ǅemal Straße ﬁne", String(repeating: "a", count: 150) + " end",
        "don't won't y'all's 'quoted' \"double\" «guillemets» ¿qué? ¡sí!", "https://example.com/path?q=1&r=[2]",
        (0..<300).map { "word\($0)" }.joined(separator: " "), "", "   ", "UNAFFABLE unaffable Unaffable",
    ]

    static func reference(_ texts: [String]) async throws -> (ids: [[Int]], vectors: [[Double]]) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("embedding-corpus-\(UUID().uuidString).json")
        try JSONSerialization.data(withJSONObject: texts).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let (status, output) = try await ONNXServingTests.python(["Tests/Python/embedding_reference.py", directory, file.path])
        try #require(status == 0, "\(output)")
        let line = try #require(output.split(separator: "\n").last(where: { $0.hasPrefix("{") }))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        return (try #require(object["ids"] as? [[Int]]), try #require(object["vectors"] as? [[Double]]))
    }

    static func model() throws -> EmbeddingModel {
        let path = try ONNXRuntimeLibrary.locate(configured: nil, environment: [:], workingDirectory: Repository.path(".")).get()
        let library = try ONNXRuntimeLibrary.open(path: path).get()
        return try EmbeddingModel(
            name: "all-MiniLM-L6-v2", directory: directory, library: library, batching: BatchingOptions(maxBatchSize: 8))
    }

    @Test("token ids equal Hugging Face tokenizers' on text with accents, CJK, punctuation, emoji, control characters and long input")
    func tokenIDs() async throws {
        let model = try Self.model()
        let expected = try await Self.reference(Self.corpus)
        for (index, text) in Self.corpus.enumerated() {
            #expect(model.tokens(text).map(Int.init) == expected.ids[index], "text \(index): \(text.prefix(60))")
        }
        #expect(expected.ids[16].count == 256, "the long text is cut to max_seq_length")
    }

    @Test("vectors are within 1e-5 cosine of ONNX Runtime's with sentence-transformers' mean pooling, alone and batched")
    func vectors() async throws {
        let model = try Self.model()
        #expect(model.dimensions == 384 && model.maximumTokens == 256 && model.pooling == .mean && model.normalizes)
        let expected = try await Self.reference(Self.corpus)
        // All at once, so the batcher merges texts padded to the same length.
        let vectors = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for (index, text) in Self.corpus.enumerated() { group.addTask { (index, try await model.embed(model.tokens(text))) } }
            var vectors = [[Float]](repeating: [], count: Self.corpus.count)
            for try await (index, vector) in group { vectors[index] = vector }
            return vectors
        }
        for (index, vector) in vectors.enumerated() {
            let reference = expected.vectors[index]
            try #require(vector.count == reference.count)
            let dot = zip(vector, reference).reduce(0.0) { $0 + Double($1.0) * $1.1 }
            let norm = vector.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(abs(norm - 1) < 1e-5, "text \(index) has unit length: \(norm)")
            #expect(1 - dot < 1e-5, "text \(index): cosine \(dot)")
        }
        // Different texts give different vectors (the test could not pass on a constant).
        let first = vectors[0]
        let second = vectors[1]
        #expect(zip(first, second).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } < 0.9)
    }

    @Test("POST /v1/embeddings through a real cortex process with the openai client: vectors as Hugging Face's, usage and credits exact")
    func route() async throws {
        let texts = ["The café's crème brûlée.", "北京欢迎你", "I 💖 emoji", (0..<300).map { "w\($0)" }.joined(separator: " ")]
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(
            environment: [
                "EMBEDDING_MODEL_DIR": Self.directory, "EMBEDDING_MODEL_NAME": "minilm", "EMBEDDING_PRICE_PER_1K": "1",
                "EMBEDDING_MAX_BATCH": "4",
            ],
            directory: directory
        )
        defer { cortex.terminate() }
        let file = directory.file("texts.json")
        try JSONSerialization.data(withJSONObject: texts).write(to: URL(fileURLWithPath: file))
        let (status, output) = try await ONNXServingTests.python([
            "Tests/Python/openai_embeddings_check.py", "http://127.0.0.1:\(port)/v1", RawHTTPConnection.demoKey, "minilm", file,
        ])
        try #require(status == 0 && output.contains("openai embeddings: all checks passed"), "\(output)")
        let line = try #require(output.split(separator: "\n").first(where: { $0.hasPrefix("{") }))
        let answer = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let vectors = try #require(answer["vectors"] as? [[Double]])
        let reference = try await Self.reference(texts)
        for (index, vector) in vectors.enumerated() {
            let dot = zip(vector, reference.vectors[index]).reduce(0.0) { $0 + $1.0 * $1.1 }
            #expect(1 - dot < 1e-5, "text \(index): cosine \(dot)")
        }
        // Usage is the tokens embedded (the long text cut to 256), and each 1,000 cost one credit.
        let tokens = reference.ids.reduce(0) { $0 + $1.count }
        #expect(answer["prompt_tokens"] as? Int == tokens)
        let charged = try #require(answer["charged"] as? [String])
        let firstToken = reference.ids[0].count
        #expect(
            charged
                == [
                    Credits(microcredits: Int64(tokens) * 1000), Credits(microcredits: Int64(tokens) * 1000),
                    Credits(microcredits: Int64(firstToken) * 1000),
                ].map(\.description))
        // The refused requests cost nothing: the balance lost exactly what was charged.
        let spent = charged.compactMap { Credits(decimal: $0)?.microcredits }.reduce(0, +)
        let me = try #require(try RawHTTPConnection.request(port: port, path: "/me"))
        let balance = try #require((try JSONSerialization.jsonObject(with: Data(me.body.utf8)) as? [String: Any])?["balance"])
        #expect(Credits(decimal: "\(balance)") == Credits(microcredits: 100 * Credits.scale - spent), "\(me.body)")
        // The most texts a request may carry (2,048) are all embedded, in order.
        let many = "[" + (0..<2048).map { #""text \#($0)""# }.joined(separator: ",") + "]"
        let full = try #require(
            try RawHTTPConnection.request(
                port: port, method: "POST", path: "/v1/embeddings", body: #"{"model":"minilm","input":"# + many + "}"))
        let fullData = (try JSONSerialization.jsonObject(with: Data(full.body.utf8)) as? [String: Any])?["data"] as? [[String: Any]]
        #expect(full.status == 200 && fullData?.count == 2048 && fullData?.last?["index"] as? Int == 2047, "\(full.body.prefix(300))")
        // The model's runs are counted like any model's.
        let metrics = try #require(try RawHTTPConnection.request(port: port, path: "/metrics")).body
        #expect(metrics.contains(#"model_batch_size_count{model="minilm"}"#), "\(metrics.prefix(300))")
    }

    @Test("EMBEDDING_MODEL_DIR that cannot be served stops start-up naming the setting; without it the route says what to set")
    func notServed() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(environment: [:], directory: directory)
        defer { cortex.terminate() }
        let answer = try #require(
            try RawHTTPConnection.request(port: port, method: "POST", path: "/v1/embeddings", body: #"{"model":"m","input":"x"}"#))
        #expect(answer.status == 404 && answer.body.contains("embeddings_not_configured") && answer.body.contains("EMBEDDING_MODEL_DIR"))
        // A directory without the model's files: the server does not start, and says why.
        let run = try await CortexProcess.runToCompletion(
            CortexProcess.binary, ["serve"],
            environment: [
                "EMBEDDING_MODEL_DIR": directory.path, "HOST": "127.0.0.1", "PORT": "0",
                "DATABASE_URL": "sqlite:" + directory.file("other.db"),
            ],
            timeout: .seconds(60))
        #expect(run.status != nil && run.status != 0, "\(run.stdout)")
        let said = run.stdout + run.stderr
        #expect(said.contains("EMBEDDING_MODEL_DIR") && said.contains("onnx/model.onnx"), "\(said)")
    }

    @Test(
        "an LLM deployment's model: embeddings from its provider (OpenAI's /v1/embeddings, Ollama's /api/embed), billed at its input price",
        arguments: ["openai", "ollama"])
    func proxied(kind: String) async throws {
        let upstream = try await FakeLLMServer(.answer("unused", usage: nil), models: ["fake-model"])
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(
            environment: [
                "LLM_PRIMARY_URL": upstream.url, "LLM_PRIMARY_KIND": kind, "LLM_PRIMARY_MODEL": "fake-model", "LLM_DEPLOYMENT": "assistant",
                "PRIMARY_POLL_INTERVAL_S": "0.05", "LLM_PRICE_INPUT_PER_1K": "1",
            ],
            directory: directory
        )
        defer { cortex.terminate() }
        try await CortexProcess.waitForPrimaryLLM(port: port)
        let dimensions = kind == "openai" ? #","dimensions":3,"user":"u-7""# : #","dimensions":3"#
        // On a thread of its own: the fake provider answering it runs in this process.
        let answer = try #require(
            try await RawHTTPConnection.requestOnThread(
                port: port, method: "POST", path: "/v1/embeddings", body: #"{"model":"assistant","input":["ab","cde"]"# + dimensions + "}"))
        try #require(answer.status == 200, "\(answer.body)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any])
        let data = try #require(object["data"] as? [[String: Any]])
        #expect(data.map { $0["embedding"] as? [Double] ?? [] } == [[2, 0.5, -0.25], [3, 0.5, -0.25]], "in the texts' order")
        #expect((object["usage"] as? [String: Any])?["prompt_tokens"] as? Int == 5 && object["model"] as? String == "assistant")
        let sent = try #require(upstream.requests.last)
        #expect(sent["model"] as? String == "fake-model" && sent["input"] as? [String] == ["ab", "cde"] && sent["dimensions"] as? Int == 3)
        if kind == "openai" {
            #expect(sent["encoding_format"] as? String == "float" && sent["user"] as? String == "u-7", "\(sent)")
        } else {
            // What Ollama's /api/embed cannot carry is refused, naming it, and never sent.
            let sentBefore = upstream.requests.count
            let refused = try #require(
                try RawHTTPConnection.request(
                    port: port, method: "POST", path: "/v1/embeddings", body: #"{"model":"assistant","input":"x","user":"u"}"#))
            #expect(
                refused.status == 400 && refused.body.contains("unsupported_parameter") && refused.body.contains("'user'"),
                "\(refused.body)")
            #expect(upstream.requests.count == sentBefore)
        }
        // The provider's 5 tokens at 1 credit per 1,000.
        let me = try #require(try RawHTTPConnection.request(port: port, path: "/me"))
        let balance = try #require((try JSONSerialization.jsonObject(with: Data(me.body.utf8)) as? [String: Any])?["balance"])
        #expect(Credits(decimal: "\(balance)") == Credits(decimal: "99.995"), "\(me.body)")
    }
}
