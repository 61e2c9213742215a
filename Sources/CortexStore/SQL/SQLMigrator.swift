import Foundation
import Logging

/// One forward-only schema change.
struct SQLMigration: Sendable {
    var version: Int
    var name: String
    var statements: [String]
}

/// Applies migrations in order, in one transaction, recording them in `schema_migrations`.
///
/// `lock` (PostgreSQL's advisory lock) runs first inside the transaction, so replicas that start
/// together migrate one after another and the second finds nothing left to do.
struct SQLMigrator {
    let database: any SQLDatabase
    let migrations: [SQLMigration]
    var lock: String?
    let logger: Logger

    /// The database has migrations this build does not know: it was written by a newer Cortex.
    struct NewerSchemaError: Error, CustomStringConvertible {
        var databaseVersion: Int
        var knownVersion: Int
        var description: String {
            "database schema version \(databaseVersion) is newer than this build knows (\(knownVersion)); run a newer cortex"
        }
    }

    static func currentVersion(of database: any SQLDatabase) async throws -> Int {
        let rows = try await database.query("SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) AS version FROM schema_migrations")
        return Int(rows.first?.integer("version") ?? 0)
    }

    func migrate() async throws {
        let known = migrations.last?.version ?? 0
        let applied = try await database.transaction { transaction -> [SQLMigration] in
            if let lock { _ = try await transaction.query(lock) }
            _ = try await transaction.query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            let current = try await Self.currentVersion(of: transaction)
            guard current <= known else {
                throw NewerSchemaError(databaseVersion: current, knownVersion: known)
            }
            let pending = migrations.filter { $0.version > current }
            for migration in pending {
                for statement in migration.statements {
                    _ = try await transaction.query(statement)
                }
                _ = try await transaction.query(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    [.integer(Int64(migration.version)), .text(migration.name), .text(Date().ISO8601Format())]
                )
            }
            return pending
        }
        for migration in applied {
            logger.info("DB_MIGRATED", metadata: ["version": .stringConvertible(migration.version), "name": "\(migration.name)"])
        }
    }
}
