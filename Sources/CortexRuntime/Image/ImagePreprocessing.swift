public import CortexCore

/// How an image classifier wants its input: from the model's config (`image:` in its YAML).
///
/// A decoded image (pixels 0...255) becomes an FP32 tensor `[1, C, H, W]` with
/// `(pixel * scale - mean[c]) / std[c]` per channel; the output row is read as probabilities of
/// `labels`.
public struct ImagePreprocessing: Sendable, Hashable, Decodable {
    /// `gray` (one channel) or `rgb` (three).
    public enum Color: String, Sendable, Hashable, Decodable {
        case gray, rgb

        /// Channels per pixel.
        public var channels: Int { self == .gray ? 1 : 3 }
    }

    public var color: Color
    /// Multiplies each 0...255 pixel first (1/255 maps to 0...1).
    public var scale: Double
    /// Subtracted per channel after scaling.
    public var mean: [Double]
    /// Divides per channel after the mean.
    public var std: [Double]
    /// Class names, one per output column.
    public var labels: [String]
    /// The model's input height and width when fixed (`nil`: any size works).
    public internal(set) var fixedHeight: Int?
    public internal(set) var fixedWidth: Int?

    enum CodingKeys: String, CodingKey {
        case color, scale, mean, std, labels
    }

    public init(color: Color, scale: Double = 1.0 / 255.0, mean: [Double]? = nil, std: [Double]? = nil, labels: [String] = []) {
        self.color = color
        self.scale = scale
        self.mean = mean ?? Array(repeating: 0, count: color.channels)
        self.std = std ?? Array(repeating: 1, count: color.channels)
        self.labels = labels
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            color: try container.decodeIfPresent(Color.self, forKey: .color) ?? .rgb,
            scale: try container.decodeIfPresent(Double.self, forKey: .scale) ?? 1.0 / 255.0,
            mean: try container.decodeIfPresent([Double].self, forKey: .mean),
            std: try container.decodeIfPresent([Double].self, forKey: .std),
            labels: try container.decodeIfPresent([String].self, forKey: .labels) ?? []
        )
    }

    /// Checks the settings against the model: one FP32 input `[N, C, H, W]` with C channels, and
    /// an output whose last dimension has one column per label. Records a fixed H and W.
    mutating func check(against metadata: ModelMetadata, path: String) throws {
        func fail(_ reason: String) -> ModelLoadError { ModelLoadError(path: path, field: "image", reason: reason) }
        guard mean.count == color.channels, std.count == color.channels else {
            throw fail("mean and std need \(color.channels) value(s) for \(color.rawValue) images")
        }
        guard std.allSatisfy({ $0 != 0 && $0.isFinite }), mean.allSatisfy(\.isFinite), scale.isFinite else {
            throw fail("scale, mean and std must be finite numbers, std not 0")
        }
        guard metadata.inputs.count == 1, let input = metadata.inputs.first, input.datatype == .fp32, input.shape.dimensions.count == 4
        else {
            throw fail("an image model needs exactly one FP32 input shaped [N, C, H, W]")
        }
        let dimensions = input.shape.dimensions
        guard dimensions[1] == -1 || dimensions[1] == color.channels else {
            throw fail("the input '\(input.name)' has \(dimensions[1]) channel(s), but color is \(color.rawValue)")
        }
        if dimensions[2] > 0 || dimensions[3] > 0 {
            fixedHeight = dimensions[2] > 0 ? dimensions[2] : nil
            fixedWidth = dimensions[3] > 0 ? dimensions[3] : nil
        }
        if !labels.isEmpty {
            guard let output = metadata.outputs.first, let columns = output.shape.dimensions.last, columns == -1 || columns == labels.count
            else {
                throw fail("\(labels.count) labels, but the first output does not have \(labels.count) columns")
            }
        }
    }
}
