import Foundation
import Testing

/// Every task in Sources is a child of another (a task group, `async let`, a service in the
/// service group), so cancellation and shutdown reach it; nothing is left running on its own.
@Suite("Structured concurrency")
struct StructuredConcurrencyTests {
    /// The one unstructured task: the process's root, started from a synchronous `main` after
    /// NIO's event loops are installed as the global executor.
    static let allowed = ["Sources/cortex/CortexCommand.swift"]

    @Test("no Task { } or Task.detached in Sources, except the process's root task")
    func noUnstructuredTasks() throws {
        let root = Repository.path("Sources")
        let files = try #require(FileManager.default.subpathsOfDirectory(atPath: root).filter { $0.hasSuffix(".swift") })
        #expect(files.count > 50, "the sources were found")
        let pattern = try Regex(#"\bTask(\.detached)?\s*(\(|\{)"#)
        var found: [String] = []
        for file in files where !Self.allowed.contains("Sources/" + file) {
            let text = try String(contentsOfFile: root + "/" + file, encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") && line.contains(pattern) {
                found.append("Sources/\(file):\(number + 1): \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
        #expect(found.isEmpty, "unstructured tasks:\n\(found.joined(separator: "\n"))")
    }
}
