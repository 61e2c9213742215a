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
}
