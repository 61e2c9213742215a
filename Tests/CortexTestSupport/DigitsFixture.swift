public import Foundation

/// ONNX Runtime's own outputs for the bundled digit images (`models/digits/expected.json`,
/// written by scripts/make_image_models.py), shared by the runtime and server tests.
public struct DigitsFixture: Decodable, Sendable {
    public struct Image: Decodable, Sendable {
        /// File name in `models/digits`.
        public var file: String
        /// The true digit.
        public var label: Int
        /// Width and height in pixels.
        public var size: Int
        /// The 8×8 images' grey pixels, row-major.
        public var pixels: [UInt8]?
        /// vA's and vB's probabilities for the 8×8 images.
        public var vA: [Float]?
        public var vB: [Float]?
    }

    public var images: [Image]

    /// The 8×8 images, which carry pixels and both models' probabilities.
    public var exact: [Image] { images.filter { $0.pixels != nil } }

    /// Reads the fixture from the repository at `root`.
    public static func load(root: URL) throws -> DigitsFixture {
        try JSONDecoder().decode(Self.self, from: Data(contentsOf: root.appendingPathComponent("models/digits/expected.json")))
    }
}
