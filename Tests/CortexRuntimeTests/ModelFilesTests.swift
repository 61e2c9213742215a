import CortexRuntime
import Foundation
import Testing

/// When the files a model was loaded from no longer match what is on disk.
@Suite("Model files on disk against what was loaded")
struct ModelFilesTests {
    @Test("unchanged, rewritten with the same size, resized, deleted; an unreadable path is not watched")
    func changes() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-files-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("m.onnx").path
        let manifest = directory.appendingPathComponent("m.yaml").path
        try Data("model".utf8).write(to: URL(fileURLWithPath: model))
        try Data("version: 1".utf8).write(to: URL(fileURLWithPath: manifest))
        let files = ModelFiles(paths: [model, manifest, directory.appendingPathComponent("absent").path])
        #expect(files.paths == [model, manifest])
        #expect(files.changes().isEmpty)

        // Same size, written anew (another inode, as deploy tools do with a rename).
        try Data("MODEL".utf8).write(to: URL(fileURLWithPath: model), options: .atomic)
        #expect(files.changes() == [.changed(path: model, loadedSize: 5, size: 5)])
        #expect(files.changes().first?.description == "\(model) was rewritten on disk since it was loaded")

        try Data("version: 22".utf8).write(to: URL(fileURLWithPath: manifest))
        #expect(files.changes().last == .changed(path: manifest, loadedSize: 10, size: 11))

        try FileManager.default.removeItem(atPath: model)
        #expect(files.changes().first == .missing(path: model))
        #expect(files.changes().first?.description == "\(model) is gone from disk")
    }
}
