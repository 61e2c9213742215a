public import CortexCore
import Foundation

/// A sentence-embedding model served for `POST /v1/embeddings`: a sentence-transformers
/// directory with an ONNX export of the transformer (`onnx/model.onnx`, or `model.onnx`), its
/// `tokenizer.json` (BERT's WordPiece), and the sentence-transformers files that say how a text
/// becomes one vector: `sentence_bert_config.json` (`max_seq_length`), `1_Pooling/config.json`
/// (mean of the token vectors, or the `[CLS]` vector) and `modules.json` (a `Normalize` module:
/// unit length).
///
/// Texts run through dynamic batchers, padded to the next of a few lengths so texts of similar
/// length share a run; the pooling reads only each text's own tokens, so the padding changes
/// nothing but the work. One batcher runs one batch at a time on `threads` ONNX Runtime threads
/// that do not spin between operators (they would take the cores from the HTTP server's): larger
/// batches and one run measured faster than several batchers of one thread each (571 against 361
/// texts/s on 2 cores), since a run's cost grows less than its texts.
public struct EmbeddingModel: Sendable {
    /// The name clients give as `model`.
    public let name: String
    /// The vector's length.
    public let dimensions: Int
    /// Tokens a text is cut to, `[CLS]` and `[SEP]` included.
    public let maximumTokens: Int
    public let pooling: Pooling
    public let normalizes: Bool
    let tokenizer: WordPieceTokenizer
    let model: any InferenceModel
    /// Where each input goes in the session's order: ids, attention mask, token types.
    private let inputOrder: [Input]

    public enum Pooling: String, Sendable {
        case mean, cls
    }

    enum Input {
        case ids, mask, types
    }

    /// Loads `directory`.
    ///
    /// - Throws: ``ModelLoadError`` naming the file and what is wrong with it.
    /// - Parameters:
    ///   - threads: ONNX Runtime's threads inside one run (the batcher runs one batch at a time).
    ///   - onExecution: Told of each run of the model (its requests and rows), for the metrics.
    public init(
        name: String, directory: String, library: ONNXRuntimeLibrary, batching: BatchingOptions, threads: Int = 1,
        onExecution: @escaping @Sendable (DynamicBatcher.Execution) -> Void = { _ in }
    ) throws {
        let file = { (name: String) in (directory as NSString).appendingPathComponent(name) }
        let manager = FileManager.default
        guard let onnx = [file("onnx/model.onnx"), file("model.onnx")].first(where: manager.fileExists(atPath:)) else {
            throw ModelLoadError(path: directory, reason: "no onnx/model.onnx or model.onnx: export the transformer to ONNX first")
        }
        do {
            tokenizer = try WordPieceTokenizer(contentsOf: file("tokenizer.json"))
        } catch {
            throw ModelLoadError(path: file("tokenizer.json"), reason: "\(error)")
        }
        var options = ONNXSessionOptions()
        options.intraOpThreads = max(threads, 1)
        options.allowSpinning = false
        let base = try ONNXModel(name: name, version: "1", path: onnx, library: library, options: options)
        var order: [Input] = []
        for spec in base.metadata.inputs {
            switch spec.name {
            case "input_ids": order.append(.ids)
            case "attention_mask": order.append(.mask)
            case "token_type_ids": order.append(.types)
            default:
                throw ModelLoadError(
                    path: onnx, reason: "input '\(spec.name)' is not one of a BERT export's (input_ids, attention_mask, token_type_ids)")
            }
            guard spec.datatype == .int64 else { throw ModelLoadError(path: onnx, reason: "input '\(spec.name)' must be INT64") }
        }
        guard order.contains(.ids), order.contains(.mask) else {
            throw ModelLoadError(path: onnx, reason: "a BERT export takes input_ids and attention_mask")
        }
        guard let output = base.metadata.outputs.first, output.shape.dimensions.count == 3, let width = output.shape.dimensions.last,
            width > 0
        else {
            throw ModelLoadError(path: onnx, reason: "its first output must be the token vectors, [batch, sequence, dimensions]")
        }
        inputOrder = order
        dimensions = width
        let config = Self.json(file("sentence_bert_config.json"))
        let modelConfig = Self.json(file("config.json"))
        let positions = modelConfig?["max_position_embeddings"]?.intValue ?? 512
        maximumTokens = min(config?["max_seq_length"]?.intValue ?? positions, positions)
        let poolingConfig = Self.json(file("1_Pooling/config.json"))
        if poolingConfig?["pooling_mode_cls_token"]?.boolValue == true {
            pooling = .cls
        } else if poolingConfig == nil || poolingConfig?["pooling_mode_mean_tokens"]?.boolValue == true {
            pooling = .mean
        } else {
            throw ModelLoadError(path: file("1_Pooling/config.json"), reason: "only mean and [CLS] pooling are supported")
        }
        normalizes =
            Self.json(file("modules.json"))?.arrayValue?.contains { $0["type"]?.stringValue?.hasSuffix("Normalize") == true } ?? false
        self.name = name
        self.model = try BatchedModel(base: base, options: batching, path: onnx, onExecution: onExecution)
    }

    private static func json(_ path: String) -> JSONValue? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONParser.parse(data)
    }

    /// The token ids of `text`, cut to ``maximumTokens``.
    public func tokens(_ text: String) -> [Int32] {
        tokenizer.encode(text, maximumLength: maximumTokens)
    }

    /// The lengths texts are padded to, so that texts of similar length run together.
    static let lengths = [16, 32, 64, 128, 256, 512]

    /// The vector of one text's token ids (from ``tokens(_:)``).
    public func embed(_ ids: [Int32]) async throws -> [Float] {
        let length = Self.lengths.first { $0 >= ids.count }.map { min($0, max(maximumTokens, ids.count)) } ?? ids.count
        var padded = ids.map(Int64.init)
        padded.append(contentsOf: repeatElement(Int64(tokenizer.padding), count: length - ids.count))
        var mask = [Int64](repeating: 1, count: ids.count)
        mask.append(contentsOf: repeatElement(0, count: length - ids.count))
        let shape = TensorShape([1, length])
        let inputs = inputOrder.map { input -> Tensor in
            switch input {
            case .ids: Tensor(name: "input_ids", datatype: .int64, shape: shape, data: .int(padded))
            case .mask: Tensor(name: "attention_mask", datatype: .int64, shape: shape, data: .int(mask))
            case .types: Tensor(name: "token_type_ids", datatype: .int64, shape: shape, data: .int([Int64](repeating: 0, count: length)))
            }
        }
        let prediction = try await model.predict(inputs)
        guard let vectors = prediction.outputs.first, case .float(let values) = vectors.data, values.count == length * dimensions else {
            throw ModelLoadError(path: name, reason: "the model's output is not [1, \(length), \(dimensions)]")
        }
        return pool(values, tokens: ids.count)
    }

    /// One vector from a text's token vectors (`values`, `[length, dimensions]` row by row, of which
    /// the first `tokens` are the text's): their mean, or the first; of unit length when the model normalizes.
    func pool(_ values: [Double], tokens: Int) -> [Float] {
        var vector = [Double](repeating: 0, count: dimensions)
        switch pooling {
        case .cls:
            for index in 0..<dimensions { vector[index] = values[index] }
        case .mean:
            for token in 0..<tokens {
                let row = token * dimensions
                for index in 0..<dimensions { vector[index] += values[row + index] }
            }
            let count = Double(max(tokens, 1))
            for index in 0..<dimensions { vector[index] /= count }
        }
        if normalizes {
            let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
            // sentence-transformers divides by the norm, or by 1e-12 when it is smaller.
            let divisor = max(norm, 1e-12)
            for index in 0..<dimensions { vector[index] /= divisor }
        }
        return vector.map { Float($0) }
    }
}
