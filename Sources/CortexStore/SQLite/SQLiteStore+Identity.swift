public import CortexCore
public import Foundation
import SQLiteNIO

extension SQLiteStore: IdentityStore {
    public func createTenant(named name: String) async throws -> Tenant {
        guard Tenant.isValidName(name) else { throw IdentityStoreError.invalidTenantName(name) }
        let now = Date()
        do {
            let rows = try await query(
                "INSERT INTO tenants (name, created_at_ms) VALUES (?, ?) RETURNING id",
                [.text(name), .integer(now.millisecondsSince1970)]
            )
            guard let id = rows.first?.column("id")?.integer else { throw IdentityStoreError.duplicateTenant(name) }
            return Tenant(id: Int64(id), name: name, createdAt: now.truncatedToMilliseconds)
        } catch let error as SQLiteError where error.reason == .constraintUniqueFailed || error.reason == .constraint {
            throw IdentityStoreError.duplicateTenant(name)
        }
    }

    public func tenant(named name: String) async throws -> Tenant? {
        try await query("SELECT id, name, created_at_ms FROM tenants WHERE name = ?", [.text(name)]).first.map(Self.tenant(from:))
    }

    public func tenant(id: Int64) async throws -> Tenant? {
        try await query("SELECT id, name, created_at_ms FROM tenants WHERE id = ?", [.integer(Int(id))]).first.map(Self.tenant(from:))
    }

    public func tenants() async throws -> [Tenant] {
        try await query("SELECT id, name, created_at_ms FROM tenants ORDER BY name").map(Self.tenant(from:))
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
            let rows = try await query(
                "UPDATE api_keys SET revoked_at_ms = NULL WHERE id = ? RETURNING \(Self.keyColumns)",
                [.integer(Int(existing.id))]
            )
            return try rows.first.map(Self.keyRecord(from:)) ?? existing
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
        let rows = try await query("SELECT \(Self.keyColumns) FROM api_keys WHERE key_hash = ?", [.text(hash)])
        guard let row = rows.first, let stored = row.column("key_hash")?.string,
            // The index found it by hash; comparing again in constant time costs nothing and
            // keeps the check honest if the lookup ever changes.
            ConstantTime.equals(stored, hash)
        else { return nil }
        return try Self.keyRecord(from: row)
    }

    public func keys(tenantID: Int64) async throws -> [APIKeyRecord] {
        try await query(
            "SELECT \(Self.keyColumns) FROM api_keys WHERE tenant_id = ? ORDER BY id DESC",
            [.integer(Int(tenantID))]
        ).map(Self.keyRecord(from:))
    }

    public func revokeKey(id: Int64, at time: Date) async throws -> Bool {
        // An earlier revocation stands; a later one cannot extend a key's life.
        let rows = try await query(
            """
            UPDATE api_keys SET revoked_at_ms = MIN(COALESCE(revoked_at_ms, ?), ?)
            WHERE id = ? RETURNING id
            """,
            [.integer(time.millisecondsSince1970), .integer(time.millisecondsSince1970), .integer(Int(id))]
        )
        return !rows.isEmpty
    }

    public func retireEnvironmentKeys(tenantID: Int64, keeping keys: [String], at time: Date) async throws -> Int {
        let kept = keys.map { SQLiteData.text(APIKeyHash.of($0)) }
        let placeholders = kept.isEmpty ? "''" : Array(repeating: "?", count: kept.count).joined(separator: ", ")
        let rows = try await query(
            """
            UPDATE api_keys SET revoked_at_ms = ?
            WHERE tenant_id = ? AND source = 'environment' AND revoked_at_ms IS NULL AND key_hash NOT IN (\(placeholders))
            RETURNING id
            """,
            [.integer(time.millisecondsSince1970), .integer(Int(tenantID))] + kept
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
        let rows = try await query(
            """
            INSERT INTO api_keys (tenant_id, key_hash, display_prefix, scopes, source, created_at_ms, expires_at_ms)
            VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING \(Self.keyColumns)
            """,
            [
                .integer(Int(tenantID)), .text(APIKeyHash.of(key)), .text(displayPrefix),
                .text(scopes.sorted().map(\.rawValue).joined(separator: ",")), .text(source.rawValue),
                .integer(now.millisecondsSince1970), expiresAt.map { .integer($0.millisecondsSince1970) } ?? .null,
            ]
        )
        guard let row = rows.first else { throw IdentityStoreError.unknownTenant(tenantID) }
        return try Self.keyRecord(from: row)
    }

    private static func tenant(from row: SQLiteRow) -> Tenant {
        Tenant(
            id: Int64(row.column("id")?.integer ?? 0),
            name: row.column("name")?.string ?? "",
            createdAt: Date(millisecondsSince1970: row.column("created_at_ms")?.integer ?? 0)
        )
    }

    private static func keyRecord(from row: SQLiteRow) throws -> APIKeyRecord {
        APIKeyRecord(
            id: Int64(row.column("id")?.integer ?? 0),
            tenantID: Int64(row.column("tenant_id")?.integer ?? 0),
            displayPrefix: row.column("display_prefix")?.string ?? "",
            scopes: Scope.parseList(row.column("scopes")?.string ?? "") ?? [],
            source: APIKeyRecord.Source(rawValue: row.column("source")?.string ?? "") ?? .generated,
            createdAt: Date(millisecondsSince1970: row.column("created_at_ms")?.integer ?? 0),
            expiresAt: row.column("expires_at_ms")?.integer.map(Date.init(millisecondsSince1970:)),
            revokedAt: row.column("revoked_at_ms")?.integer.map(Date.init(millisecondsSince1970:))
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
