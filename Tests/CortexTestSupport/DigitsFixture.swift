public import Foundation

/// The bundled digit images and ONNX Runtime's outputs for them as computed on the machine that
/// made them (`models/digits/expected.json`, written by scripts/make_image_models.py), shared by
/// the runtime and server tests.
///
/// The outputs are bit-exact only on a processor like the one that made them: compare with
/// `agrees(_:_:)`, and bit for bit only with `ONNXReference`, made on the machine under test.
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

    /// The relative difference within which ONNX Runtime's floats agree across processors.
    public static let crossMachineTolerance: Float = 1e-5

    /// Whether `value`, computed on this machine, agrees with the fixture's `expected` within
    /// `crossMachineTolerance` relative to the larger of the two.
    public static func agrees(_ value: Float, _ expected: Float) -> Bool {
        abs(value - expected) <= crossMachineTolerance * max(abs(value), abs(expected))
    }

    /// Reads the fixture from the repository at `root`.
    public static func load(root: URL) throws -> DigitsFixture {
        try JSONDecoder().decode(Self.self, from: Data(contentsOf: root.appendingPathComponent("models/digits/expected.json")))
    }
}
