public import CortexCore
public import Foundation

extension StateStore: IdentityStore {
    public func createTenant(named name: String) async throws -> Tenant {
        guard Tenant.isValidName(name) else { throw IdentityStoreError.invalidTenantName(name) }
        let now = Date()
        let rows = try await database.query(
            "INSERT INTO tenants (name, created_at_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING id",
            [.text(name), .integer(Int64(now.millisecondsSince1970))]
        )
        guard let id = rows.first?.integer("id") else { throw IdentityStoreError.duplicateTenant(name) }
        return Tenant(id: id, name: name, createdAt: now.truncatedToMilliseconds)
    }

    public func tenant(named name: String) async throws -> Tenant? {
        try await database.query("SELECT id, name, created_at_ms FROM tenants WHERE name = $1", [.text(name)]).first.map(Self.tenant(from:))
    }

    public func tenant(id: Int64) async throws -> Tenant? {
        try await database.query("SELECT id, name, created_at_ms FROM tenants WHERE id = $1", [.integer(id)]).first.map(Self.tenant(from:))
    }

    /// How many tenants there are.
    public func tenantCount() async throws -> Int {
        Int(try await database.query("SELECT COUNT(*) AS count FROM tenants").first?.integer("count") ?? 0)
    }

    public func tenants() async throws -> [Tenant] {
        try await database.query("SELECT id, name, created_at_ms FROM tenants ORDER BY name").map(Self.tenant(from:))
    }

    public func issueKey(tenantID: Int64, scopes: Set<Scope>, expiresAt: Date?) async throws -> IssuedAPIKey {
        let key = APIKey.generate()
        let record = try await insertKey(
            key.text,
            displayPrefix: key.displayPrefix,
            tenantID: tenantID,
            scopes: scopes,
            source: .generated,
            expiresAt: expiresAt
        )
        return IssuedAPIKey(record: record, key: key.text)
    }

    public func importKey(_ key: String, tenantID: Int64, scopes: Set<Scope>) async throws -> APIKeyRecord {
        guard APIKey.isPlausible(key[...]) else { throw IdentityStoreError.implausibleKey }
        if let existing = try await record(forKey: key) {
            guard existing.source == .environment, existing.revokedAt != nil else { return existing }
            let rows = try await database.query(
                "UPDATE api_keys SET revoked_at_ms = NULL WHERE id = $1 RETURNING \(Self.keyColumns)",
                [.integer(existing.id)]
            )
            return rows.first.map(Self.keyRecord(from:)) ?? existing
        }
        return try await insertKey(
            key,
            displayPrefix: APIKey.displayPrefix(of: key),
            tenantID: tenantID,
            scopes: scopes,
            source: .environment,
            expiresAt: nil
        )
    }

    public func record(forKey key: String) async throws -> APIKeyRecord? {
        let hash = APIKeyHash.of(key)
        let rows = try await database.query("SELECT \(Self.keyColumns) FROM api_keys WHERE key_hash = $1", [.text(hash)])
        guard let row = rows.first, let stored = row.text("key_hash"),
            // The index found it by hash; comparing again in constant time costs nothing and
            // keeps the check honest if the lookup ever changes.
            ConstantTime.equals(stored, hash)
        else { return nil }
        return Self.keyRecord(from: row)
    }

    public func keys(tenantID: Int64) async throws -> [APIKeyRecord] {
        try await database.query(
            "SELECT \(Self.keyColumns) FROM api_keys WHERE tenant_id = $1 ORDER BY id DESC",
            [.integer(tenantID)]
        ).map(Self.keyRecord(from:))
    }

    public func revokeKey(id: Int64, at time: Date) async throws -> Bool {
        // An earlier revocation stands; a later one cannot extend a key's life.
        let rows = try await database.query(
            """
            UPDATE api_keys SET revoked_at_ms = CASE
                WHEN revoked_at_ms IS NOT NULL AND revoked_at_ms < $1 THEN revoked_at_ms ELSE $1 END
            WHERE id = $2 RETURNING id
            """,
            [.integer(Int64(time.millisecondsSince1970)), .integer(id)]
        )
        return !rows.isEmpty
    }

    public func retireEnvironmentKeys(tenantID: Int64, keeping keys: [String], at time: Date) async throws -> Int {
        let kept = keys.map { SQLValue.text(APIKeyHash.of($0)) }
        let placeholders = kept.isEmpty ? "''" : (0..<kept.count).map { "$\($0 + 3)" }.joined(separator: ", ")
        let rows = try await database.query(
            """
            UPDATE api_keys SET revoked_at_ms = $1
            WHERE tenant_id = $2 AND source = 'environment' AND revoked_at_ms IS NULL AND key_hash NOT IN (\(placeholders))
            RETURNING id
            """,
            [.integer(Int64(time.millisecondsSince1970)), .integer(tenantID)] + kept
        )
        return rows.count
    }

    /// Retires the environment's keys of every tenant but `tenantIDs`: those whose variable
    /// (`API_KEY_<TENANT>`) is gone. Keys issued through the API or the CLI are kept.
    ///
    /// - Returns: How many keys were retired.
    public func retireEnvironmentKeys(exceptTenants tenantIDs: [Int64], at time: Date) async throws -> Int {
        let kept = tenantIDs.map { SQLValue.integer($0) }
        let placeholders = kept.isEmpty ? "-1" : (0..<kept.count).map { "$\($0 + 2)" }.joined(separator: ", ")
        let rows = try await database.query(
            """
            UPDATE api_keys SET revoked_at_ms = $1
            WHERE source = 'environment' AND revoked_at_ms IS NULL AND tenant_id NOT IN (\(placeholders))
            RETURNING id
            """,
            [.integer(Int64(time.millisecondsSince1970))] + kept
        )
        return rows.count
    }

    private static let keyColumns =
        "id, tenant_id, key_hash, display_prefix, scopes, source, created_at_ms, expires_at_ms, revoked_at_ms"

    private func insertKey(
        _ key: String,
        displayPrefix: String,
        tenantID: Int64,
        scopes: Set<Scope>,
        source: APIKeyRecord.Source,
        expiresAt: Date?
    ) async throws -> APIKeyRecord {
        guard !scopes.isEmpty else { throw IdentityStoreError.noScopes }
        guard try await tenant(id: tenantID) != nil else { throw IdentityStoreError.unknownTenant(tenantID) }
        let now = Date()
        let rows = try await database.query(
            """
            INSERT INTO api_keys (tenant_id, key_hash, display_prefix, scopes, source, created_at_ms, expires_at_ms)
            VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING \(Self.keyColumns)
            """,
            [
                .integer(tenantID), .text(APIKeyHash.of(key)), .text(displayPrefix),
                .text(scopes.sorted().map(\.rawValue).joined(separator: ",")), .text(source.rawValue),
                .integer(Int64(now.millisecondsSince1970)), .integer(expiresAt.map { Int64($0.millisecondsSince1970) }),
            ]
        )
        guard let row = rows.first else { throw IdentityStoreError.unknownTenant(tenantID) }
        return Self.keyRecord(from: row)
    }

    private static func tenant(from row: SQLRow) -> Tenant {
        Tenant(
            id: row.integer("id") ?? 0,
            name: row.text("name") ?? "",
            createdAt: Date(millisecondsSince1970: Int(row.integer("created_at_ms") ?? 0))
        )
    }

    private static func keyRecord(from row: SQLRow) -> APIKeyRecord {
        APIKeyRecord(
            id: row.integer("id") ?? 0,
            tenantID: row.integer("tenant_id") ?? 0,
            displayPrefix: row.text("display_prefix") ?? "",
            scopes: Scope.parseList(row.text("scopes") ?? "") ?? [],
            source: APIKeyRecord.Source(rawValue: row.text("source") ?? "") ?? .generated,
            createdAt: Date(millisecondsSince1970: Int(row.integer("created_at_ms") ?? 0)),
            expiresAt: row.integer("expires_at_ms").map { Date(millisecondsSince1970: Int($0)) },
            revokedAt: row.integer("revoked_at_ms").map { Date(millisecondsSince1970: Int($0)) }
        )
    }
}

extension Date {
    /// Whole milliseconds since 1970, the form times are stored in.
    var millisecondsSince1970: Int {
        Int((timeIntervalSince1970 * 1000).rounded(.down))
    }

    /// This time as stored: to the millisecond.
    var truncatedToMilliseconds: Date {
        Date(millisecondsSince1970: millisecondsSince1970)
    }

    init(millisecondsSince1970 milliseconds: Int) {
        self.init(timeIntervalSince1970: Double(milliseconds) / 1000)
    }
}
