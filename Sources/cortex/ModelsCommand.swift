import ArgumentParser
import CortexCore
import CortexRuntime
import Foundation

struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Work with model files.",
        subcommands: [Validate.self, Bench.self]
    )

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load models as the server would and print their signatures; exits 1 if any fails."
        )

        @Argument(help: "Model files or directories.")
        var paths: [String]

        func run() async throws {
            var failed = false
            for path in paths {
                do {
                    let metadata = try ModelLoader(onnxLibrary: ProcessInfo.processInfo.environment["ORT_LIBRARY_PATH"]).load(
                        ModelSource(path: path)
                    ).metadata
                    print("OK \(path): \(metadata.name) version \(metadata.version) (\(metadata.platform))")
                    for spec in metadata.inputs { print("  input  \(spec.name) \(spec.datatype.rawValue) \(spec.shape)") }
                    for spec in metadata.outputs { print("  output \(spec.name) \(spec.datatype.rawValue) \(spec.shape)") }
                    for key in metadata.properties.keys.sorted() { print("  \(key): \(metadata.properties[key] ?? "")") }
                    if !metadata.featureNames.isEmpty { print("  features: \(metadata.featureNames.joined(separator: ", "))") }
                } catch {
                    failed = true
                    print("FAIL \(error)")
                }
            }
            if failed { throw ExitCode(1) }
        }
    }

    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time bare ONNX Runtime Run calls on an ONNX model (zeros, dynamic dimensions as --size) and print percentiles."
        )

        @Argument(help: "An ONNX model file or directory.")
        var path: String

        @Option(help: "Run calls to time (after 100 untimed).")
        var runs = 10_000

        @Option(help: "Size of every dynamic dimension but the first.")
        var size = 8

        @Option(help: "Size of the first (batch) dimension when it is dynamic.")
        var batch = 1

        func run() async throws {
            let loaded = try ModelLoader(onnxLibrary: ProcessInfo.processInfo.environment["ORT_LIBRARY_PATH"]).load(ModelSource(path: path))
            let base = (loaded as? BatchedModel)?.base ?? loaded
            guard let model = base as? ONNXModel else {
                throw ValidationError("\(path) is not an ONNX model")
            }
            let inputs = model.metadata.zeroInputs(batch: batch, size: size)
            _ = try model.timeRuns(inputs, iterations: 100)
            let times = try model.timeRuns(inputs, iterations: max(1, runs)).sorted()
            func percentile(_ p: Double) -> Double { Double(times[min(times.count - 1, Int(Double(times.count) * p))]) / 1000 }
            print(
                "\(model.metadata.name): \(times.count) Run calls, inputs \(inputs.map { "\($0.name) \($0.shape)" }.joined(separator: ", "))"
            )
            print(String(format: "run_p50_us %.2f\nrun_p90_us %.2f\nrun_p99_us %.2f", percentile(0.5), percentile(0.9), percentile(0.99)))
        }
    }
}
