/// Every schema change, in order. Append only: never edit a migration that has shipped.
enum SQLiteMigrations {
    static let all: [SQLMigration] = [
        SQLMigration(
            version: 1,
            name: "readiness probe and metadata",
            statements: [
                "CREATE TABLE cortex_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                "CREATE TABLE readiness_probe (id INTEGER PRIMARY KEY CHECK (id = 1), checked_at TEXT NOT NULL)",
            ]
        ),
        SQLMigration(
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
        SQLMigration(
            version: 3,
            name: "credits ledger",
            statements: [
                "ALTER TABLE tenants ADD COLUMN balance_micros INTEGER NOT NULL DEFAULT 0 CHECK (balance_micros >= 0)",
                """
                CREATE TABLE ledger_entries (
                    id INTEGER PRIMARY KEY,
                    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
                    request_id TEXT NOT NULL,
                    phase TEXT NOT NULL CHECK (phase IN ('open', 'close', 'grant')),
                    kind TEXT NOT NULL CHECK (kind IN ('hold', 'settle', 'release', 'grant')),
                    amount_micros INTEGER NOT NULL,
                    model TEXT,
                    key_id INTEGER,
                    note TEXT,
                    created_at_ms INTEGER NOT NULL,
                    UNIQUE (tenant_id, request_id, phase)
                )
                """,
                """
                CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
                BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END
                """,
                """
                CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
                BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END
                """,
                """
                CREATE TABLE open_holds (
                    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
                    request_id TEXT NOT NULL,
                    amount_micros INTEGER NOT NULL CHECK (amount_micros > 0),
                    expires_at_ms INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, request_id)
                )
                """,
                "CREATE INDEX open_holds_by_expiry ON open_holds (expires_at_ms)",
                """
                CREATE TABLE idempotency_keys (
                    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
                    idempotency_key TEXT NOT NULL,
                    request_id TEXT NOT NULL,
                    fingerprint TEXT NOT NULL,
                    response_status INTEGER,
                    response_body TEXT,
                    created_at_ms INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, idempotency_key)
                )
                """,
                "CREATE INDEX idempotency_keys_by_request ON idempotency_keys (tenant_id, request_id)",
            ]
        ),
        SQLMigration(
            version: 4,
            name: "balances are whole micro-credits",
            // SQLite turns an integer sum that overflows 64 bits into a float, which its INTEGER
            // column keeps as one; PostgreSQL's BIGINT refuses it by itself. Refuse it here too.
            statements: ["INSERT", "UPDATE OF balance_micros"].map { event in
                """
                CREATE TRIGGER tenants_balance_integer_\(event == "INSERT" ? "insert" : "update") BEFORE \(event) ON tenants
                WHEN typeof(NEW.balance_micros) <> 'integer'
                BEGIN SELECT RAISE(ABORT, 'balance_micros must be a whole number of micro-credits'); END
                """
            } + [
                """
                CREATE TRIGGER ledger_entries_amount_integer BEFORE INSERT ON ledger_entries
                WHEN typeof(NEW.amount_micros) <> 'integer'
                BEGIN SELECT RAISE(ABORT, 'amount_micros must be a whole number of micro-credits'); END
                """
            ]
        ),
        SQLMigration(
            version: 5,
            name: "traffic settings",
            statements: [
                """
                CREATE TABLE traffic_settings (
                    endpoint TEXT PRIMARY KEY,
                    version INTEGER NOT NULL,
                    settings TEXT NOT NULL,
                    changed_at_ms INTEGER NOT NULL
                )
                """,
                """
                CREATE TABLE traffic_changes (
                    id INTEGER PRIMARY KEY,
                    endpoint TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    settings TEXT NOT NULL,
                    actor TEXT NOT NULL,
                    changed_at_ms INTEGER NOT NULL,
                    UNIQUE (endpoint, version)
                )
                """,
            ]
        ),
        SQLMigration(
            version: 6,
            name: "credit leases",
            statements: [
                """
                CREATE TABLE credit_leases (
                    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
                    owner TEXT NOT NULL,
                    amount_micros INTEGER NOT NULL CHECK (amount_micros >= 0),
                    expires_at_ms INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, owner)
                )
                """
            ]
        ),
        SQLMigration(
            version: 7,
            name: "Idempotency-Key records by age",
            statements: ["CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at_ms)"]
        ),
    ]
}
