import CortexCore
import CortexServer
import CortexStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("Admin API and key rotation")
struct AdminAPITests {
    static let adminToken = "admin-token-0123456789abcdef"

    static func server(
        reload: ConfigurationChange? = nil,
        _ configure: (inout CortexConfiguration) -> Void = { _ in }
    ) async throws -> TestServer {
        try await TestServer.make(reload: reload) { configuration in
            configuration.auth.requireAPIKey = true
            configuration.auth.demo = .on
            configuration.auth.adminToken = adminToken
            configure(&configuration)
        }
    }

    static var admin: HTTPFields { [.authorization: "Bearer \(adminToken)"] }

    @Test("admin routes answer 401 without or with wrong credentials, 403 to a key without the admin scope")
    func guarded() async throws {
        let server = try await Self.server()
        try await server.test { client async throws in
            #expect(try await client.get("/admin/tenants").status == .unauthorized)
            #expect(
                try await client.get("/admin/tenants", headers: [.authorization: "Bearer admin-token-0123456789abcdeX"]).status
                    == .unauthorized)
            #expect(try await client.get("/admin/tenants", headers: [.xAPIKey: CortexConfiguration.demoAPIKey]).status == .forbidden)
            #expect(try await client.get("/admin/tenants", headers: Self.admin).status == .ok)
            // The multi-tenant ops API's form: /ops/tenants with x-admin-key next to a tenant's x-api-key.
            let ops = try await client.get(
                "/ops/tenants", headers: [.xAdminKey: Self.adminToken, .xAPIKey: CortexConfiguration.demoAPIKey])
            #expect(ops.status == .ok)
            #expect((ops.body.jsonObject["tenants"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["demo"])
        }
        #expect(!server.logs.allText.contains(Self.adminToken))
    }

    @Test("tenants and keys are created, listed and revoked through the API; a revoked key stops at once")
    func lifecycle() async throws {
        let server = try await Self.server()
        try await server.test { client async throws in
            let created = try await client.post("/admin/tenants", json: #"{"name":"acme"}"#, headers: Self.admin)
            #expect(created.status == .created)
            #expect(try await client.post("/admin/tenants", json: #"{"name":"acme"}"#, headers: Self.admin).status == .conflict)
            #expect(
                try await client.post("/admin/tenants", json: #"{"name":"no spaces"}"#, headers: Self.admin).status == .unprocessableContent
            )
            #expect(try await client.post("/admin/tenants", json: #"{}"#, headers: Self.admin).status == .badRequest)

            let issued = try await client.post(
                "/admin/tenants/acme/keys", json: #"{"scopes":["infer","admin"],"expires_in_s":3600}"#, headers: Self.admin)
            #expect(issued.status == .created)
            let key = try #require(issued.body.jsonObject["key"] as? String)
            let id = try #require(issued.body.jsonObject["id"] as? Int)
            #expect(issued.body.jsonObject["expires_at"] is String)

            // The new admin-scoped key works on the admin API, too.
            #expect(try await client.get("/admin/tenants", headers: [.xAPIKey: key]).status == .ok)
            let listed = try await client.get("/admin/tenants/acme/keys", headers: Self.admin)
            #expect(!listed.body.text.contains(key))
            #expect(listed.body.text.contains(String(key.prefix(12))))
            #expect(try await client.get("/admin/tenants/nobody/keys", headers: Self.admin).status == .notFound)
            #expect(
                try await client.post("/admin/tenants/acme/keys", json: #"{"scopes":["write"]}"#, headers: Self.admin).status
                    == .unprocessableContent)

            #expect(try await client.get("/me", headers: [.xAPIKey: key]).status == .ok)
            #expect(try await client.post("/admin/keys/\(id)/revoke", json: "", headers: Self.admin).status == .ok)
            #expect(try await client.get("/me", headers: [.xAPIKey: key]).status == .unauthorized, "the 5 s cache is dropped on revoke")
            #expect(try await client.post("/admin/keys/999999/revoke", json: "", headers: Self.admin).status == .notFound)

            let metrics = try await client.get("/metrics").body.text
            #expect(MetricsTests.value(of: "api_tenants_count", in: metrics) == 2)
        }
        #expect(server.logs.events(named: "KEY_REVOKED").count == 1)
    }

    @Test("rotation returns a new key; the old one stops at once, or after the grace period")
    func rotation() async throws {
        let server = try await Self.server()
        let store = server.dependencies.store
        let tenant = try await store.createTenant(named: "acme")
        let first = try await store.issueKey(tenantID: tenant.id, scopes: [.infer], expiresAt: nil)
        try await server.test { client async throws in
            let rotated = try await client.post("/keys/rotate", json: "", headers: [.xAPIKey: first.key])
            #expect(rotated.status == .ok)
            let second = try #require(rotated.body.jsonObject["key"] as? String)
            #expect(second != first.key)
            #expect(rotated.body.jsonObject["old_key_prefix"] as? String == first.record.displayPrefix)
            #expect(try await client.get("/me", headers: [.xAPIKey: first.key]).status == .unauthorized)
            #expect(try await client.get("/me", headers: [.xAPIKey: second]).body.jsonObject["tenant"] as? String == "acme")

            let graced = try await client.post("/keys/rotate", json: #"{"grace_s":60}"#, headers: [.xAPIKey: second])
            let third = try #require(graced.body.jsonObject["key"] as? String)
            #expect(try await client.get("/me", headers: [.xAPIKey: second]).status == .ok, "still inside the grace period")
            #expect(try await client.get("/me", headers: [.xAPIKey: third]).status == .ok)
            #expect(
                try await client.post("/keys/rotate", json: #"{"grace_s":-1}"#, headers: [.xAPIKey: third]).status == .unprocessableContent)

            let managed = try await client.post("/keys/rotate", json: "", headers: [.xAPIKey: CortexConfiguration.demoAPIKey])
            #expect(managed.status == .conflict)
            #expect(managed.body.jsonObject["code"] as? String == "managed_key")
        }
        #expect(!server.logs.allText.contains(first.key))
        #expect(server.logs.events(named: "KEY_ROTATED").count == 2)
    }

    @Test("reload-auth re-reads API_KEYS without a restart: new keys work, removed keys stop")
    func reloadAuth() async throws {
        let change = ConfigurationChange { loaded in
            var next = loaded
            next.auth.apiKeys = ["fresh-key-0002"]
            return next
        }
        let server = try await Self.server(reload: change) { $0.auth.apiKeys = ["stale-key-0001"] }
        try await server.test { client async throws in
            #expect(try await client.get("/me", headers: [.xAPIKey: "stale-key-0001"]).status == .ok)
            #expect(try await client.get("/me", headers: [.xAPIKey: "fresh-key-0002"]).status == .unauthorized)
            let reloaded = try await client.post("/ops/reload-auth", json: "", headers: [.xAdminKey: Self.adminToken])
            #expect(reloaded.status == .ok)
            #expect(reloaded.body.jsonObject["api_keys"] as? Int == 1)
            #expect(try await client.get("/me", headers: [.xAPIKey: "fresh-key-0002"]).status == .ok)
            #expect(try await client.get("/me", headers: [.xAPIKey: "stale-key-0001"]).status == .unauthorized)
        }
        #expect(server.logs.events(named: "AUTH_RELOADED").count == 1)
    }

    @Test("ADMIN_TOKEN must be long enough; the multi-tenant ops API's API_ADMIN_KEY is accepted as its alias")
    func adminTokenSetting() throws {
        #expect(throws: ConfigurationError.self) { try CortexConfiguration.load(file: nil, environment: ["ADMIN_TOKEN": "short"]) }
        let legacy = try CortexConfiguration.load(file: nil, environment: ["API_ADMIN_KEY": Self.adminToken])
        #expect(legacy.auth.adminToken == Self.adminToken)
        #expect(!legacy.summary.contains(Self.adminToken))
    }
}
