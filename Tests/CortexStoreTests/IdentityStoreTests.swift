import CortexCore
import Foundation
import Logging
import Testing

@testable import CortexStore

@Suite("Tenants and API keys on SQLite and PostgreSQL")
struct IdentityStoreTests {
    static func withStore(_ backend: Backend, _ body: (StateStore) async throws -> Void) async throws {
        try await backend.withStore(body)
    }

    @Test("tenants are created once per name and listed by name", arguments: Backend.allCases)
    func tenants(backend: Backend) async throws {
        try await Self.withStore(backend) { store in
            let acme = try await store.createTenant(named: "acme")
            _ = try await store.createTenant(named: "beta")
            #expect(try await store.tenant(named: "acme") == acme)
            #expect(try await store.tenant(id: acme.id) == acme)
            #expect(try await store.tenants().map(\.name) == ["acme", "beta"])
            await #expect(throws: IdentityStoreError.duplicateTenant("acme")) {
                _ = try await store.createTenant(named: "acme")
            }
            await #expect(throws: IdentityStoreError.invalidTenantName("has space")) {
                _ = try await store.createTenant(named: "has space")
            }
        }
    }

    @Test("an issued key is stored only as its hash and found by the key", arguments: Backend.allCases)
    func issuedKeys(backend: Backend) async throws {
        try await Self.withStore(backend) { store in
            let tenant = try await store.createTenant(named: "acme")
            let issued = try await store.issueKey(tenantID: tenant.id, scopes: [.infer], expiresAt: nil)
            #expect(issued.key.hasPrefix(issued.record.displayPrefix + "_"))
            #expect(try await store.record(forKey: issued.key) == issued.record)
            #expect(try await store.record(forKey: issued.key + "x") == nil)
            #expect(issued.record.scopes == [.infer])
            #expect(issued.record.source == .generated)

            // Nothing in the database file holds the key's secret.
            let rows = try await store.database.query("SELECT * FROM api_keys")
            let dump = rows.map { "\($0)" }.joined()
            #expect(!dump.contains(issued.key))
            #expect(dump.contains(APIKeyHash.of(issued.key)))
        }
    }

    @Test("imported keys are idempotent and keep their own display prefix", arguments: Backend.allCases)
    func importedKeys(backend: Backend) async throws {
        try await Self.withStore(backend) { store in
            let tenant = try await store.createTenant(named: "default")
            let first = try await store.importKey("demo-api-key-123", tenantID: tenant.id, scopes: [.infer])
            let again = try await store.importKey("demo-api-key-123", tenantID: tenant.id, scopes: [.infer])
            #expect(first == again)
            #expect(first.displayPrefix == "demo-a")
            #expect(first.source == .environment)
            #expect(try await store.keys(tenantID: tenant.id).count == 1)
            await #expect(throws: IdentityStoreError.implausibleKey) {
                _ = try await store.importKey("bad key", tenantID: tenant.id, scopes: [.infer])
            }
        }
    }

    @Test("revocation takes effect at the given time and cannot be pushed later", arguments: Backend.allCases)
    func revocation(backend: Backend) async throws {
        try await Self.withStore(backend) { store in
            let tenant = try await store.createTenant(named: "acme")
            let issued = try await store.issueKey(tenantID: tenant.id, scopes: [.infer, .admin], expiresAt: nil)
            let now = Date()
            #expect(try await store.revokeKey(id: issued.record.id, at: now.addingTimeInterval(60)))
            let graced = try #require(try await store.record(forKey: issued.key))
            #expect(graced.isActive(at: now))
            #expect(!graced.isActive(at: now.addingTimeInterval(61)))
            #expect(try await store.revokeKey(id: issued.record.id, at: now.addingTimeInterval(-1)))
            #expect(try await store.revokeKey(id: issued.record.id, at: now.addingTimeInterval(3600)))
            let revoked = try #require(try await store.record(forKey: issued.key))
            #expect(!revoked.isActive(at: now), "the earlier revocation stands")
            #expect(try await store.revokeKey(id: 999_999, at: now) == false)
        }
    }

    @Test("expired keys are inactive; keys need a scope and an existing tenant", arguments: Backend.allCases)
    func expiryAndValidation(backend: Backend) async throws {
        try await Self.withStore(backend) { store in
            let tenant = try await store.createTenant(named: "acme")
            let past = Date().addingTimeInterval(-1)
            let issued = try await store.issueKey(tenantID: tenant.id, scopes: [.infer], expiresAt: past)
            #expect(try await store.record(forKey: issued.key)?.isActive(at: Date()) == false)
            await #expect(throws: IdentityStoreError.noScopes) {
                _ = try await store.issueKey(tenantID: tenant.id, scopes: [], expiresAt: nil)
            }
            await #expect(throws: IdentityStoreError.unknownTenant(4242)) {
                _ = try await store.issueKey(tenantID: 4242, scopes: [.infer], expiresAt: nil)
            }
        }
    }

    @Test("environment keys no longer configured are retired, and come back when configured again", arguments: Backend.allCases)
    func retireEnvironmentKeys(backend: Backend) async throws {
        try await Self.withStore(backend) { store in
            let tenant = try await store.createTenant(named: "default")
            let generated = try await store.issueKey(tenantID: tenant.id, scopes: [.infer], expiresAt: nil)
            _ = try await store.importKey("keep-key-0001", tenantID: tenant.id, scopes: [.infer])
            _ = try await store.importKey("drop-key-0002", tenantID: tenant.id, scopes: [.infer])
            let now = Date()
            #expect(try await store.retireEnvironmentKeys(tenantID: tenant.id, keeping: ["keep-key-0001"], at: now) == 1)
            #expect(try await store.record(forKey: "drop-key-0002")?.isActive(at: now) == false)
            #expect(try await store.record(forKey: "keep-key-0001")?.isActive(at: now) == true)
            #expect(try await store.record(forKey: generated.key)?.isActive(at: now) == true, "generated keys are never retired this way")
            #expect(try await store.retireEnvironmentKeys(tenantID: tenant.id, keeping: [], at: now) == 1)
            let back = try await store.importKey("drop-key-0002", tenantID: tenant.id, scopes: [.infer])
            #expect(back.isActive(at: now))
        }
    }

    @Test("the stored hash is SHA-256 of the key")
    func hash() {
        #expect(APIKeyHash.of("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
