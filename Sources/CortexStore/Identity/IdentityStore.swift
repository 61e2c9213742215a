public import CortexCore
public import Foundation

/// Tenants and their API keys, on whichever database is configured.
public protocol IdentityStore: Sendable {
    /// Creates a tenant; fails with ``IdentityStoreError/duplicateTenant`` if the name is taken.
    func createTenant(named name: String) async throws -> Tenant
    /// The tenant of that name, if any.
    func tenant(named name: String) async throws -> Tenant?
    /// The tenant with that id, if any.
    func tenant(id: Int64) async throws -> Tenant?
    /// Every tenant, by name.
    func tenants() async throws -> [Tenant]

    /// Generates, stores (hashed) and returns a new key for a tenant.
    func issueKey(tenantID: Int64, scopes: Set<Scope>, expiresAt: Date?) async throws -> IssuedAPIKey
    /// Stores a key chosen elsewhere (`API_KEYS`); a key already stored is returned as it is,
    /// except that an environment key retired earlier is made active again.
    func importKey(_ key: String, tenantID: Int64, scopes: Set<Scope>) async throws -> APIKeyRecord
    /// Revokes, from `time`, a tenant's environment keys that are not among `keeping`: a key
    /// removed from `API_KEYS` stops working. Returns how many were revoked.
    func retireEnvironmentKeys(tenantID: Int64, keeping keys: [String], at time: Date) async throws -> Int
    /// The record of a presented key, found by its hash; `nil` if unknown (revoked and expired keys are returned, for the caller to judge).
    func record(forKey key: String) async throws -> APIKeyRecord?
    /// A tenant's keys, newest first.
    func keys(tenantID: Int64) async throws -> [APIKeyRecord]
    /// Marks a key revoked from `time` on (now, or later for a grace period); `false` if no such key.
    func revokeKey(id: Int64, at time: Date) async throws -> Bool
}

/// Why an identity operation failed.
public enum IdentityStoreError: Error, Equatable, CustomStringConvertible {
    /// A tenant of that name exists.
    case duplicateTenant(String)
    /// No tenant has that id.
    case unknownTenant(Int64)
    /// The name does not satisfy ``Tenant/isValidName(_:)``.
    case invalidTenantName(String)
    /// A key needs at least one scope.
    case noScopes
    /// The key is not acceptable (see ``APIKey/isPlausible(_:)``).
    case implausibleKey

    public var description: String {
        switch self {
        case .duplicateTenant(let name): "a tenant named '\(name)' already exists"
        case .unknownTenant(let id): "no tenant with id \(id)"
        case .invalidTenantName(let name): "invalid tenant name '\(name)': use 1-64 letters, digits, '-', '_' or '.'"
        case .noScopes: "a key needs at least one scope"
        case .implausibleKey: "a key must be 8-256 printable ASCII characters without spaces"
        }
    }
}
