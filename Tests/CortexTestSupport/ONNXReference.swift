public import Foundation

/// ONNX Runtime's own outputs for the bundled digit images, computed on the machine under test
/// by Python's onnxruntime from the project's `.venv` (`Tests/Python/onnx_reference.py`).
///
/// ONNX Runtime's CPU kernels pick code paths by processor, so its floats differ in the last
/// bits between machines: bit-for-bit parity means something only against a reference made
/// here, with the same ONNX Runtime release Cortex loads. The committed fixture
/// (`DigitsFixture`) stays a cross-machine check with a tolerance.
public struct ONNXReference: Decodable, Sendable {
    /// One model's probabilities, in `DigitsFixture.exact`'s order.
    public struct Outputs: Decodable, Sendable {
        /// Each image run alone (`[1, 1, 8, 8]`).
        public var single: [[Float]]
        /// All images in one run (`[20, 1, 8, 8]`).
        public var batch: [[Float]]
    }

    /// The version of Python's onnxruntime that computed it.
    public var onnxruntime: String
    /// By model name (`vA`, `vB`).
    public var models: [String: Outputs]

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The reference, computed once per test process.
    public static func live() throws -> ONNXReference {
        try computed.get()
    }

    /// `model`'s outputs; a test failure names the model when the reference lacks it.
    public func outputs(_ model: String) throws -> Outputs {
        guard let outputs = models[model] else { throw Failure(description: "the ONNX reference has no model \(model)") }
        return outputs
    }

    private static let computed = Result { try compute(root: repositoryRoot) }

    private static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Runs `.venv/bin/python Tests/Python/onnx_reference.py` and decodes what it prints.
    private static func compute(root: URL) throws -> ONNXReference {
        let python = root.appendingPathComponent(".venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw Failure(description: "\(python) is missing: run scripts/onnxruntime.sh install (make test does)")
        }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-onnx-reference-\(UUID().uuidString).json")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        let process = try ChildProcess(
            executable: python,
            arguments: [root.appendingPathComponent("Tests/Python/onnx_reference.py").path],
            environment: ProcessInfo.processInfo.environment,
            directory: root.path,
            standardOutput: handle.fileDescriptor
        )
        try? handle.close()
        let status = process.waitUntilExit()
        guard status == 0 else { throw Failure(description: "Tests/Python/onnx_reference.py exited with \(status)") }
        return try JSONDecoder().decode(ONNXReference.self, from: Data(contentsOf: output))
    }
}
