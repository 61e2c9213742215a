import Foundation
import Logging
import Testing

@testable import CortexStore

@Suite("Embedded SQLite store")
struct SQLiteStoreTests {
    static func temporaryPath() -> String {
        NSTemporaryDirectory() + "cortex-store-" + UUID().uuidString + "/nested/cortex.db"
    }

    @Test("opening creates folders, turns on WAL and migrates once; reopening is a no-op")
    func migrations() async throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let store = try await StateStore.openSQLite(path: path, logger: Logger(label: "test"))
        #expect(try await store.schemaVersion() == SQLiteMigrations.all.last?.version)
        try await store.probeWrite()
        await store.close()

        let again = try await StateStore.openSQLite(path: path, logger: Logger(label: "test"))
        #expect(try await again.schemaVersion() == SQLiteMigrations.all.last?.version)
        await again.close()

        let raw = try SQLiteConnection(path: path)
        let mode = try raw.execute("PRAGMA journal_mode", []).first?.text("journal_mode")
        #expect(mode == "wal")
        let applied = try raw.execute("SELECT COUNT(*) AS n FROM schema_migrations", []).first?.integer("n")
        #expect(applied == Int64(SQLiteMigrations.all.count))
        raw.close()
    }

    @Test("a database from a newer Cortex is refused instead of being damaged")
    func newerSchema() async throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let store = try await StateStore.openSQLite(path: path, logger: Logger(label: "test"))
        await store.close()
        let raw = try SQLiteConnection(path: path)
        _ = try raw.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 'now')", [])
        raw.close()
        await #expect(throws: SQLMigrator.NewerSchemaError.self) {
            _ = try await StateStore.openSQLite(path: path, logger: Logger(label: "test"))
        }
    }

    @Test("the write probe fails while another connection holds the write lock")
    func probeFailsWhenLocked() async throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let store = try await StateStore.openSQLite(path: path, probeTimeoutMilliseconds: 50, logger: Logger(label: "test"))
        let other = try SQLiteConnection(path: path)
        _ = try other.execute("BEGIN EXCLUSIVE", [])
        await #expect(throws: (any Error).self) {
            try await store.probeWrite()
        }
        _ = try other.execute("ROLLBACK", [])
        try await store.probeWrite()
        other.close()
        await store.close()
    }

    @Test("a database file removed under the running server fails the probe")
    func probeFailsWhenFileRemoved() async throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let store = try await StateStore.openSQLite(path: path, logger: Logger(label: "test"))
        try await store.probeWrite()
        try FileManager.default.removeItem(atPath: path)
        await #expect(throws: StoreFailure.self) {
            try await store.probeWrite()
        }
        await store.close()
    }
}
