import ArgumentParser
import CortexRuntime
import Foundation

struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Work with model files.",
        subcommands: [Validate.self]
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
}
