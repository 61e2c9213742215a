import CortexCore
import CortexStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

@testable import CortexServer

@Suite("API keys on the HTTP API")
struct AuthenticationTests {
    static let row = #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0]}]}"#
    static let demoKey = CortexConfiguration.demoAPIKey

    /// A server that requires keys, with the demo tenant and a cache that never hides a revocation.
    static func server(_ configure: (inout CortexConfiguration) -> Void = { _ in }) async throws -> TestServer {
        try await TestServer.make { configuration in
            configuration.auth.requireAPIKey = true
            configuration.auth.demo = .on
            configuration.auth.cacheTTLSeconds = 0
            configure(&configuration)
        }
    }

    @Test(
        "inference without a key, or with an unknown one, is a 401 that says the same thing",
        arguments: [nil, "ctx_AAAAAAAA_unknownunknownunknownunknownunk", "x"])
    func unauthorized(key: String?) async throws {
        let server = try await Self.server()
        try await server.test { client async throws in
            var headers: HTTPFields = [:]
            if let key { headers[.xAPIKey] = key }
            let response = try await client.post("/v2/models/lead-scoring/infer", json: Self.row, headers: headers)
            #expect(response.status == .unauthorized)
            let body = response.body.jsonObject
            #expect(body["code"] as? String == "unauthorized")
            #expect(body["error"] as? String == APIError.unauthorized.message)
            #expect(body["request_id"] as? String == response.headers[.xRequestID])
            let metrics = try await client.get("/metrics").body.text
            #expect(metrics.contains(#"inference_outcome_total{model="lead-scoring",outcome="success"}"#) == false)
        }
    }

    @Test("the demo key works as X-API-Key and as a bearer token; public routes need no key")
    func demoKey() async throws {
        let server = try await Self.server()
        try await server.test { client async throws in
            #expect(try await client.post("/v2/models/lead-scoring/infer", json: Self.row, headers: [.xAPIKey: Self.demoKey]).status == .ok)
            #expect(
                try await client.post(
                    "/api/v1/score", json: #"{"features":{"pages_viewed":3}}"#, headers: [.authorization: "Bearer \(Self.demoKey)"]
                )
                .status == .ok
            )
            for path in ["/health", "/ready", "/v2", "/v2/models/lead-scoring", "/v2/models/lead-scoring/ready", "/metrics"] {
                #expect(try await client.get(path).status == .ok, "\(path)")
            }
            #expect(try await client.get("/api/v1/model/info").status == .unauthorized)
        }
    }

    @Test("/me describes the caller's tenant and key without revealing the key")
    func me() async throws {
        let server = try await Self.server()
        try await server.test { client async throws in
            let response = try await client.get("/me", headers: [.xAPIKey: Self.demoKey])
            #expect(response.status == .ok)
            let body = response.body.jsonObject
            #expect(body["tenant"] as? String == "demo")
            #expect(body["key_prefix"] as? String == "demo-a")
            #expect(body["scopes"] as? [String] == ["infer"])
            #expect(!response.body.text.contains(Self.demoKey))
        }
    }

    @Test("revoked and expired keys stop working; a key without the infer scope is a 403")
    func lifecycle() async throws {
        let server = try await Self.server()
        let store = server.dependencies.store
        let tenant = try await store.createTenant(named: "acme")
        let revoked = try await store.issueKey(tenantID: tenant.id, scopes: [.infer], expiresAt: nil)
        let expired = try await store.issueKey(tenantID: tenant.id, scopes: [.infer], expiresAt: Date().addingTimeInterval(-1))
        let adminOnly = try await store.issueKey(tenantID: tenant.id, scopes: [.admin], expiresAt: nil)
        try await server.test { client async throws in
            #expect(try await client.post("/v2/models/lead-scoring/infer", json: Self.row, headers: [.xAPIKey: revoked.key]).status == .ok)
            _ = try await store.revokeKey(id: revoked.record.id, at: Date())
            #expect(
                try await client.post("/v2/models/lead-scoring/infer", json: Self.row, headers: [.xAPIKey: revoked.key]).status
                    == .unauthorized)
            #expect(
                try await client.post("/v2/models/lead-scoring/infer", json: Self.row, headers: [.xAPIKey: expired.key]).status
                    == .unauthorized)
            let forbidden = try await client.post("/v2/models/lead-scoring/infer", json: Self.row, headers: [.xAPIKey: adminOnly.key])
            #expect(forbidden.status == .forbidden)
            #expect(forbidden.body.jsonObject["code"] as? String == "forbidden")
        }
        #expect(!server.logs.allText.contains(revoked.key))
        #expect(!server.logs.allText.contains(adminOnly.key))
        #expect(server.logs.events(named: "INFERENCE_SUCCESS").first?.metadata["tenant"] == "acme")
    }

    @Test("with a cache, a key revoked elsewhere works until the TTL and not after")
    func cacheTTL() async throws {
        let server = try await Self.server { $0.auth.cacheTTLSeconds = 0.3 }
        let store = server.dependencies.store
        let tenant = try await store.createTenant(named: "acme")
        let issued = try await store.issueKey(tenantID: tenant.id, scopes: [.infer], expiresAt: nil)
        try await server.test { client async throws in
            #expect(try await client.post("/v2/models/lead-scoring/infer", json: Self.row, headers: [.xAPIKey: issued.key]).status == .ok)
            _ = try await store.revokeKey(id: issued.record.id, at: Date())
            try await Task.sleep(for: .milliseconds(400))
            #expect(
                try await client.post("/v2/models/lead-scoring/infer", json: Self.row, headers: [.xAPIKey: issued.key]).status
                    == .unauthorized)
        }
    }

    @Test("REQUIRE_API_KEY=false lets anonymous requests infer but still refuses a bad key")
    func optional() async throws {
        let server = try await Self.server { $0.auth.requireAPIKey = false }
        try await server.test { client async throws in
            #expect(try await client.post("/v2/models/lead-scoring/infer", json: Self.row).status == .ok)
            #expect(
                try await client.post("/v2/models/lead-scoring/infer", json: Self.row, headers: [.xAPIKey: "wrong-key-123"]).status
                    == .unauthorized)
            #expect(try await client.get("/me").status == .unauthorized)
        }
    }

    @Test("API_KEYS seeds working keys for the default tenant, and api_tenants_count counts tenants")
    func seededKeys() async throws {
        let server = try await Self.server {
            $0.auth.apiKeys = ["first-key-0001", "second-key-0002"]
        }
        try await server.test { client async throws in
            let me = try await client.get("/me", headers: [.xAPIKey: "second-key-0002"])
            #expect(me.body.jsonObject["tenant"] as? String == "default")
            let metrics = try await client.get("/metrics").body.text
            #expect(MetricsTests.value(of: "api_tenants_count", in: metrics) == 2)
        }
        #expect(!server.logs.allText.contains("first-key-0001"))
    }

    @Test("restarting with a key removed from API_KEYS, or with the demo off, revokes those keys")
    func reseeding() async throws {
        let server = try await Self.server { $0.auth.apiKeys = ["old-key-0001", "new-key-0002"] }
        let store = server.dependencies.store
        var next = server.dependencies.configuration
        next.auth.apiKeys = ["new-key-0002"]
        next.auth.demo = .off
        try await ServerDependencies.seedIdentities(configuration: next, store: store, logger: server.logs.logger())
        let now = Date()
        #expect(try await store.record(forKey: "old-key-0001")?.isActive(at: now) == false)
        #expect(try await store.record(forKey: "new-key-0002")?.isActive(at: now) == true)
        #expect(try await store.record(forKey: CortexConfiguration.demoAPIKey)?.isActive(at: now) == false)
        try await server.test { client async throws in
            #expect(try await client.get("/me", headers: [.xAPIKey: "old-key-0001"]).status == .unauthorized)
            #expect(try await client.get("/me", headers: [.xAPIKey: Self.demoKey]).status == .unauthorized)
            #expect(try await client.get("/me", headers: [.xAPIKey: "new-key-0002"]).status == .ok)
        }
    }

    @Test("the demo tenant is on by default only for a loopback listener")
    func demoDefault() throws {
        let config = CortexConfiguration()
        #expect(config.auth.demoEnabled(host: "127.0.0.1"))
        #expect(!config.auth.demoEnabled(host: "0.0.0.0"))
        let off = try CortexConfiguration.load(file: nil, environment: ["DEMO_TENANT": "off"])
        #expect(!off.auth.demoEnabled(host: "127.0.0.1"))
        #expect(throws: ConfigurationError.self) {
            try CortexConfiguration.load(file: nil, environment: ["API_KEYS": "ok-key-123,bad key"])
        }
        #expect(throws: ConfigurationError.self) { try CortexConfiguration.load(file: nil, environment: ["REQUIRE_API_KEY": "maybe"]) }
    }

    /// The real store, counting the key look-ups that reach the database, by key.
    final class CountingStore: IdentityStore {
        let base: any IdentityStore
        let lookups = Mutex<[String: Int]>([:])
        init(_ base: any IdentityStore) { self.base = base }
        func reads(_ key: String) -> Int { lookups.withLock { $0[key, default: 0] } }
        func createTenant(named name: String) async throws -> Tenant { try await base.createTenant(named: name) }
        func tenant(named name: String) async throws -> Tenant? { try await base.tenant(named: name) }
        func tenant(id: Int64) async throws -> Tenant? { try await base.tenant(id: id) }
        func tenants() async throws -> [Tenant] { try await base.tenants() }
        func issueKey(tenantID: Int64, scopes: Set<Scope>, expiresAt: Date?) async throws -> IssuedAPIKey {
            try await base.issueKey(tenantID: tenantID, scopes: scopes, expiresAt: expiresAt)
        }
        func importKey(_ key: String, tenantID: Int64, scopes: Set<Scope>) async throws -> APIKeyRecord {
            try await base.importKey(key, tenantID: tenantID, scopes: scopes)
        }
        func retireEnvironmentKeys(tenantID: Int64, keeping keys: [String], at time: Date) async throws -> Int {
            try await base.retireEnvironmentKeys(tenantID: tenantID, keeping: keys, at: time)
        }
        func record(forKey key: String) async throws -> APIKeyRecord? {
            lookups.withLock { $0[key, default: 0] += 1 }
            return try await base.record(forKey: key)
        }
        func keys(tenantID: Int64) async throws -> [APIKeyRecord] { try await base.keys(tenantID: tenantID) }
        func revokeKey(id: Int64, at time: Date) async throws -> Bool { try await base.revokeKey(id: id, at: time) }
    }

    @Test(
        "unknown keys are remembered for the cache's TTL: a wrong key retried costs one database read; random keys never push real ones out"
    )
    func negativeCache() async throws {
        let server = try await Self.server()
        let store = CountingStore(server.dependencies.store)
        var configuration = Authenticator.Configuration()
        configuration.cacheTTL = .seconds(300)
        let authenticator = Authenticator(store: store, configuration: configuration)
        var none = Authenticator.Configuration()
        none.cacheTTL = .zero
        let uncached = Authenticator(store: store, configuration: none)
        try await server.test { _ in
            let wrong = "wrong-key-0000000001"
            for _ in 0..<100 { #expect(try await authenticator.principal(forKey: wrong) == nil) }
            #expect(store.reads(wrong) == 1, "one read for 100 tries")
            // A flood of distinct random keys: each read once, and the demo key stays cached.
            #expect(try await authenticator.principal(forKey: Self.demoKey)?.tenant.name == "demo")
            for index in 0..<12_000 { _ = try await authenticator.principal(forKey: "random-key-\(index)-\(UUID().uuidString)") }
            #expect(try await authenticator.principal(forKey: Self.demoKey)?.tenant.name == "demo")
            #expect(store.reads(Self.demoKey) == 1, "the demo key was never read again")
            // A key made valid after it was refused (API_KEYS reloaded, which invalidates) works at once.
            let tenant = try #require(try await store.tenant(named: "demo"))
            _ = try await store.importKey(wrong, tenantID: tenant.id, scopes: [.infer])
            authenticator.invalidate()
            #expect(try await authenticator.principal(forKey: wrong)?.tenant.name == "demo")
            // With no TTL nothing is remembered: every try is read.
            for _ in 0..<3 { _ = try await uncached.principal(forKey: "other-wrong-key-01") }
            #expect(store.reads("other-wrong-key-01") == 3)
        }
    }
}
