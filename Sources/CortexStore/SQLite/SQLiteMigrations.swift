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
        ),
        SQLiteMigration(
            version: 2,
            name: "tenants and API keys",
            statements: [
                """
                CREATE TABLE tenants (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    created_at_ms INTEGER NOT NULL
                )
                """,
                """
                CREATE TABLE api_keys (
                    id INTEGER PRIMARY KEY,
                    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
                    key_hash TEXT NOT NULL UNIQUE,
                    display_prefix TEXT NOT NULL,
                    scopes TEXT NOT NULL,
                    source TEXT NOT NULL,
                    created_at_ms INTEGER NOT NULL,
                    expires_at_ms INTEGER,
                    revoked_at_ms INTEGER
                )
                """,
                "CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id)",
            ]
        ),
    ]
}
