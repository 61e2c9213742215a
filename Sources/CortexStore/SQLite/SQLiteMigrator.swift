import Foundation
import Logging
import SQLiteNIO

/// Applies ``SQLiteMigration``s in order, each in its own transaction, recording them in `schema_migrations`.
struct SQLiteMigrator {
    let connection: SQLiteConnection
    let logger: Logger

    /// The database has migrations this build does not know: it was written by a newer Cortex.
    struct NewerSchemaError: Error, CustomStringConvertible {
        var databaseVersion: Int
        var knownVersion: Int
        var description: String {
            "database schema version \(databaseVersion) is newer than this build knows (\(knownVersion)); run a newer cortex"
        }
    }

    func currentVersion() async throws -> Int {
        let rows = try await connection.query("SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations")
        return rows.first?.column("version")?.integer ?? 0
    }

    func migrate(_ migrations: [SQLiteMigration]) async throws {
        _ = try await connection.query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        let current = try await currentVersion()
        let known = migrations.last?.version ?? 0
        guard current <= known else {
            throw NewerSchemaError(databaseVersion: current, knownVersion: known)
        }
        for migration in migrations where migration.version > current {
            _ = try await connection.query("BEGIN IMMEDIATE")
            do {
                for statement in migration.statements {
                    _ = try await connection.query(statement)
                }
                _ = try await connection.query(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    [.integer(migration.version), .text(migration.name), .text(Date().ISO8601Format())]
                )
                _ = try await connection.query("COMMIT")
            } catch {
                _ = try? await connection.query("ROLLBACK")
                throw error
            }
            logger.info("DB_MIGRATED", metadata: ["version": .stringConvertible(migration.version), "name": "\(migration.name)"])
        }
    }
}
