import Foundation
import Testing

@testable import CortexStore

/// What counts as SQLite's shared-memory file having changed under the server.
@Suite("SQLite shared-memory file guard")
struct SharedMemoryGuardTests {
    static func file(size: Int) throws -> (database: String, shm: String, remove: () -> Void) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-shm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let database = directory.appendingPathComponent("cortex.db").path
        try Data(count: size).write(to: URL(fileURLWithPath: database + "-shm"))
        return (database, database + "-shm", { try? FileManager.default.removeItem(at: directory) })
    }

    @Test("no file, no guard; grown is fine; truncated, replaced or deleted fails naming the file")
    func changes() throws {
        #expect(SharedMemoryGuard(databasePath: "/nonexistent/cortex.db") == nil, "not in WAL mode: nothing to guard")

        let (database, shm, remove) = try Self.file(size: 32_768)
        defer { remove() }
        let guarded = try #require(SharedMemoryGuard(databasePath: database))
        try guarded.check()
        // SQLite grows the file in 32 KiB steps: still the same file.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: shm))
        try handle.truncate(atOffset: 65_536)
        try guarded.check()
        // Back to 32 KiB is smaller than seen: pages SQLite mapped are gone.
        try handle.truncate(atOffset: 32_768)
        try handle.close()
        #expect {
            try guarded.check()
        } throws: { error in
            "\(error)".contains("truncated outside Cortex (32768 of 65536 bytes)")
        }

        let (otherDatabase, otherShm, removeOther) = try Self.file(size: 32_768)
        defer { removeOther() }
        let replaced = try #require(SharedMemoryGuard(databasePath: otherDatabase))
        // A new file under the same name (a copy moved into place): another inode.
        try Data(count: 32_768).write(to: URL(fileURLWithPath: otherShm + ".new"))
        _ = rename(otherShm + ".new", otherShm)
        #expect {
            try replaced.check()
        } throws: { error in
            "\(error)".contains("replaced outside Cortex") && "\(error)".contains(otherShm)
        }
        try FileManager.default.removeItem(atPath: otherShm)
        #expect {
            try replaced.check()
        } throws: { error in
            "\(error)".contains("is gone")
        }
    }
}
