import Foundation
public import Logging
import NIOPosix
import SQLiteNIO

/// The embedded SQLite database: one file in WAL mode with versioned migrations.
///
/// Writes go through one connection; the readiness probe uses its own connection with a
/// short busy timeout, so a locked or read-only database fails the probe quickly
/// instead of hanging it.
public final class SQLiteStore: Sendable {
    /// The absolute path of the database file.
    public let path: String
    private let connection: SQLiteConnection
    private let probeConnection: SQLiteConnection
    private let logger: Logger

    private init(path: String, connection: SQLiteConnection, probeConnection: SQLiteConnection, logger: Logger) {
        self.path = path
        self.connection = connection
        self.probeConnection = probeConnection
        self.logger = logger
    }

    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    ///
    /// - Parameters:
    ///   - path: A file path, relative to the working directory or absolute; parent folders are created.
    ///   - probeTimeoutMilliseconds: How long the readiness probe waits for a lock.
    ///   - logger: Where migrations are logged.
    public static func open(path: String, probeTimeoutMilliseconds: Int = 1000, logger: Logger) async throws -> SQLiteStore {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        try FileManager.default.createDirectory(
            atPath: (absolute as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        let connection = try await SQLiteConnection.open(storage: .file(path: absolute), logger: logger)
        do {
            for pragma in [
                "PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON", "PRAGMA busy_timeout = 5000",
            ] {
                _ = try await connection.query(pragma)
            }
            try await SQLiteMigrator(connection: connection, logger: logger).migrate(SQLiteMigrations.all)
            let probeConnection = try await SQLiteConnection.open(storage: .file(path: absolute), logger: logger)
            _ = try await probeConnection.query("PRAGMA busy_timeout = \(max(probeTimeoutMilliseconds, 1))")
            return SQLiteStore(path: absolute, connection: connection, probeConnection: probeConnection, logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Performs a real write (an upsert into `readiness_probe`) to prove the database accepts writes.
    public func probeWrite() async throws {
        _ = try await probeConnection.query(
            "INSERT INTO readiness_probe (id, checked_at) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET checked_at = excluded.checked_at",
            [.text(Date().ISO8601Format())]
        )
    }

    /// The highest applied schema version.
    public func schemaVersion() async throws -> Int {
        try await SQLiteMigrator(connection: connection, logger: logger).currentVersion()
    }

    /// Closes both connections.
    public func close() async {
        try? await probeConnection.close()
        try? await connection.close()
    }
}
