/// One forward-only schema change.
struct SQLiteMigration: Sendable {
    var version: Int
    var name: String
    var statements: [String]
}

/// Every schema change, in order. Append only: never edit a migration that has shipped.
enum SQLiteMigrations {
    static let all: [SQLiteMigration] = [
        SQLiteMigration(
            version: 1,
            name: "readiness probe and metadata",
            statements: [
                "CREATE TABLE cortex_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                "CREATE TABLE readiness_probe (id INTEGER PRIMARY KEY CHECK (id = 1), checked_at TEXT NOT NULL)",
            ]
        )
    ]
}
