import CortexStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import CortexServer

/// The multi-tenant ops API's "when you're ready to harden" switches: `ALLOWED_HOSTS`,
/// `CORS_ORIGINS`, `API_KEY_<TENANT>` with `/ops/reload-auth` and `/ops/model-status`, and an
/// `api_tenants_count` that stays true.
@Suite("Production switches (ALLOWED_HOSTS, CORS_ORIGINS, API_KEY_<TENANT>)")
struct ProductionSwitchesTests {
    @Test(
        "ALLOWED_HOSTS through the real binary: another Host is 400 host_not_allowed before any work; probes and /metrics answer any Host")
    func allowedHosts() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(
            environment: ["ALLOWED_HOSTS": "api.example.com,*.example.org"], directory: directory)
        defer { cortex.terminate() }
        func score(_ host: String) throws -> (status: Int, body: String)? {
            try RawHTTPConnection.request(port: port, method: "POST", path: "/api/v1/score", body: LedgerLoadTests.lead, host: host)
        }
        for host in ["api.example.com", "API.example.com:8000", "eu.example.org", "a.b.example.org"] {
            #expect(try score(host)?.status == 200, "\(host)")
        }
        for host in ["evil.example", "example.org", "api.example.com.evil.example", "127.0.0.1"] {
            let refused = try score(host)
            #expect(refused?.status == 400, "\(host)")
            let body = (try? JSONSerialization.jsonObject(with: Data((refused?.body ?? "").utf8)) as? [String: Any]) ?? [:]
            #expect(body["code"] as? String == "host_not_allowed" && body["request_id"] != nil, "\(host): \(refused?.body ?? "")")
        }
        for path in ["/health", "/ready", "/metrics"] {
            #expect(try RawHTTPConnection.request(port: port, path: path, host: "10.0.0.7:8000")?.status == 200, "\(path)")
        }
        // Refused before any work: the lead scored only for the allowed hosts.
        let metrics = try RawHTTPConnection.request(port: port, path: "/metrics", host: "api.example.com")?.body ?? ""
        #expect(MetricsTests.value(of: #"inference_outcome_total{model="lead-scoring",outcome="success"}"#, in: metrics) == 4)
    }

    @Test("host patterns: exact names, *.domain for subdomains only, *, ports and IPv6 literals; bad values stop start-up")
    func hostPatterns() throws {
        let check = HostCheckMiddleware<CortexRequestContext>(patterns: ["api.example.com", "*.example.org", "[::1]"], exempt: [])
        #expect(check.allows("api.example.com") && check.allows("api.example.com:443") && check.allows("x.example.org"))
        #expect(check.allows("[::1]:8000") && !check.allows("[::2]:8000"))
        #expect(!check.allows("example.org") && !check.allows("xexample.org") && !check.allows(nil))
        #expect(HostCheckMiddleware<CortexRequestContext>(patterns: ["*"], exempt: []).allows("anything:1"))
        let config = try CortexConfiguration.load(file: nil, environment: ["ALLOWED_HOSTS": "API.Example.com, *.example.org"])
        #expect(config.server.allowedHosts == ["api.example.com", "*.example.org"])
        for bad in ["bad host", "*example.org", "exa..mple.org", "http://api.example.com", ".example.org"] {
            #expect(throws: ConfigurationError.self, "\(bad)") {
                try CortexConfiguration.load(file: nil, environment: ["ALLOWED_HOSTS": bad])
            }
        }
    }

    @Test("CORS_ORIGINS on every route: preflights answered or 403, the header on answers and errors, * without credentials")
    func cors() async throws {
        let origin = "https://ui.example.com"
        let server = try await TestServer.make { $0.server.corsOrigins = [origin] }
        try await server.test { client in
            for path in ["/v2/models/lead-scoring/infer", "/api/v1/score", "/v1/infer", "/me"] {
                let preflight = try await client.execute(
                    uri: path, method: .options, headers: [.origin: origin, .accessControlRequestMethod: "POST"]
                ) { $0 }
                #expect(preflight.status == .noContent, "\(path)")
                #expect(
                    preflight.headers[.accessControlAllowOrigin] == origin && preflight.headers[.accessControlAllowCredentials] == "true")
                #expect(preflight.headers[.accessControlAllowHeaders]?.contains("X-API-Key") == true)
                let stranger = try await client.execute(uri: path, method: .options, headers: [.origin: "https://evil.example"]) { $0 }
                #expect(stranger.status == .forbidden && stranger.headers[.accessControlAllowOrigin] == nil, "\(path)")
                #expect(stranger.body.text.contains("CORS_ORIGINS"))
            }
            let answer = try await client.post("/api/v1/score", json: LedgerLoadTests.lead, headers: [.origin: origin])
            #expect(answer.status == .ok && answer.headers[.accessControlAllowOrigin] == origin)
            #expect(answer.headers[.vary] == "Origin" && answer.headers[.accessControlExposeHeaders]?.contains("X-Request-ID") == true)
            let error = try await client.post("/v2/models/nowhere/infer", json: "{}", headers: [.origin: origin])
            #expect(error.status == .notFound && error.headers[.accessControlAllowOrigin] == origin)
            let other = try await client.post("/api/v1/score", json: LedgerLoadTests.lead, headers: [.origin: "https://evil.example"])
            #expect(other.status == .ok && other.headers[.accessControlAllowOrigin] == nil, "served, but not readable by that page")
        }
        let any = try await TestServer.make { $0.server.corsOrigins = ["*"] }
        try await any.test { client in
            let preflight = try await client.execute(uri: "/api/v1/score", method: .options, headers: [.origin: "https://x.example"]) { $0 }
            #expect(preflight.headers[.accessControlAllowOrigin] == "*" && preflight.headers[.accessControlAllowCredentials] == nil)
        }
        let none = try await TestServer.make()
        try await none.test { client in
            let answer = try await client.post("/api/v1/score", json: LedgerLoadTests.lead, headers: [.origin: origin])
            #expect(answer.status == .ok && answer.headers[.accessControlAllowOrigin] == nil, "no CORS_ORIGINS, no CORS")
        }
        // One mechanism, both names: the LLM assistant's ALLOWED_ORIGINS is CORS_ORIGINS.
        let legacy = try CortexConfiguration.load(file: nil, environment: ["ALLOWED_ORIGINS": origin])
        #expect(legacy.server.corsOrigins == [origin])
    }

    @Test("API_KEY_<TENANT> variables: a tenant each, keys from the value or a _FILE; bad ones stop start-up naming the variable")
    func tenantKeySettings() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write("temp-key", "temp-key-0001\n")
        let config = try CortexConfiguration.load(
            file: nil,
            environment: ["API_KEY_EXPERTCO": "expert-key-0001,expert-key-0002", "API_KEY_TEMP_FILE": file, "API_KEYS": "default-key-01"])
        #expect(config.auth.tenantKeys.map(\.tenant) == ["expertco", "temp"])
        #expect(config.auth.tenantKeys.map(\.keys) == [["expert-key-0001", "expert-key-0002"], ["temp-key-0001"]])
        #expect(config.secrets.contains("expert-key-0002") && !config.summary.contains("expert-key-0001"))
        for (environment, key) in [
            (["API_KEY_DEFAULT": "some-key-0001"], "API_KEY_DEFAULT"),
            (["API_KEY_DEMO": "some-key-0001"], "API_KEY_DEMO"),
            (["API_KEY_X": "short"], "API_KEY_X"),
            (["API_KEY_A": "same-key-0001", "API_KEY_B": "same-key-0001"], "API_KEY_B"),
            (["API_KEY_A": "same-key-0001", "API_KEYS": "same-key-0001"], "API_KEY_A"),
            (["API_KEY_BAD_FILE": "/nowhere/key"], "API_KEY_BAD_FILE"),
        ] {
            do {
                _ = try CortexConfiguration.load(file: nil, environment: environment)
                Issue.record("\(environment) was accepted")
            } catch let error as ConfigurationError {
                #expect(error.key == key, "\(environment)")
                #expect(!error.description.contains("some-key-0001") && !error.description.contains("same-key-0001"), "no key in messages")
            } catch {
                Issue.record("\(environment): not a configuration error naming the variable: \(error)")
            }
        }
    }

    @Test("API_KEY_<TENANT> at start and through /ops/reload-auth; /ops/model-status answers the key's tenant, limits and models")
    func tenantKeys() async throws {
        let change = ConfigurationChange { loaded in
            var next = loaded
            // The runbook's rotation: a TEMP tenant's key added, EXPERTCO's key replaced.
            next.auth.tenantKeys = [
                .init(tenant: "expertco", keys: ["expert-key-0002"], variable: "API_KEY_EXPERTCO"),
                .init(tenant: "temp", keys: ["NEWKEY123"], variable: "API_KEY_TEMP"),
            ]
            return next
        }
        let server = try await AdminAPITests.server(reload: change) { configuration in
            configuration.auth.requireAPIKey = true
            configuration.auth.tenantKeys = [.init(tenant: "expertco", keys: ["expert-key-0001"], variable: "API_KEY_EXPERTCO")]
        }
        try await server.test { client in
            let status = try await client.get("/ops/model-status", headers: [.xAPIKey: "expert-key-0001"])
            #expect(status.status == .ok, "\(status.body.text)")
            let body = status.body.jsonObject
            #expect(body["tenant"] as? String == "expertco" && body["ready"] as? Bool == true && body["limits"] != nil)
            let models = try #require(body["models"] as? [[String: Any]])
            #expect(models.map { $0["name"] as? String } == ["lead-scoring"] && models.first?["ready"] as? Bool == true)
            #expect(try await client.get("/ops/model-status").status == .unauthorized)
            #expect(try await client.get("/ops/model-status", headers: [.xAPIKey: "NEWKEY123"]).status == .unauthorized)

            let admin: HTTPFields = [.xAPIKey: "expert-key-0001", .xAdminKey: AdminAPITests.adminToken]
            let reloaded = try await client.post("/ops/reload-auth", json: "", headers: admin)
            #expect(reloaded.status == .ok && reloaded.body.jsonObject["tenant_keys"] as? Int == 2, "\(reloaded.body.text)")
            let temp = try await client.get("/ops/model-status", headers: [.xAPIKey: "NEWKEY123"])
            #expect(temp.status == .ok && temp.body.jsonObject["tenant"] as? String == "temp")
            #expect(try await client.get("/ops/model-status", headers: [.xAPIKey: "expert-key-0002"]).status == .ok)
            #expect(try await client.get("/ops/model-status", headers: [.xAPIKey: "expert-key-0001"]).status == .unauthorized)
            let tenants = try await client.get("/ops/tenants", headers: [.xAdminKey: AdminAPITests.adminToken]).body.jsonObject
            let names = (tenants["tenants"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            #expect(names.contains("expertco") && names.contains("temp"))
        }
        #expect(!server.logs.allText.contains("NEWKEY123") && !server.logs.allText.contains("expert-key-0002"))
        #expect(server.logs.events(named: "API_KEYS_SEEDED").contains { $0.metadata["tenant"] == "temp" })
    }

    @Test("a tenant whose API_KEY_<TENANT> is gone loses that key at the next start; keys issued through the API stay")
    func removedVariable() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = CortexConfiguration.Database.sqlite(path: directory.file("cortex.db"))
        let first = try await TestServer.make {
            $0.database = database
            $0.auth.tenantKeys = [.init(tenant: "gone", keys: ["gone-key-0001"], variable: "API_KEY_GONE")]
        }
        let tenant = try #require(try await first.dependencies.store.tenant(named: "gone"))
        let issued = try await first.dependencies.store.issueKey(tenantID: tenant.id, scopes: [.infer], expiresAt: nil)
        try await first.test { _ in }
        let second = try await TestServer.make { $0.database = database }
        let keys = try await second.dependencies.store.keys(tenantID: tenant.id)
        #expect(keys.first { $0.source == .environment }?.revokedAt != nil, "the variable's key is retired")
        #expect(keys.first { $0.id == issued.record.id }?.revokedAt == nil, "an issued key is not the environment's")
        #expect(second.logs.events(named: "API_KEYS_RETIRED").first?.metadata["count"] == "1")
        try await second.test { _ in }
    }

    @Test("api_tenants_count stays true when another process (cortex tenants create) adds a tenant")
    func tenantCount() async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            let before = MetricsTests.value(of: "api_tenants_count", in: try await client.get("/metrics").body.text) ?? -1
            // What `cortex tenants create` does, from outside this server's admin API.
            _ = try await server.dependencies.store.createTenant(named: "made-elsewhere")
            let after = MetricsTests.value(of: "api_tenants_count", in: try await client.get("/metrics").body.text) ?? -1
            #expect(after == before + 1, "\(before) -> \(after)")
        }
    }

    @Test("the legacy /status/summary is counted and marked deprecated; FAIL_ON_LEGACY makes it 410; LEGACY_SUNSET is its Sunset")
    func legacyStatus() async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            let legacy = try await client.get("/status/summary")
            #expect(legacy.status == .ok && legacy.headers[.xStatusPath] == "legacy")
            #expect(legacy.headers[.deprecation] == "@1796083200" && legacy.headers[.sunset] == nil)
            #expect(legacy.headers[.link] == #"</api/status/summary>; rel="successor-version""#)
            let current = try await client.get("/api/status/summary")
            #expect(current.status == .ok && current.headers[.xStatusPath] == "api" && current.headers[.deprecation] == nil)
            let metrics = try await client.get("/metrics").body.text
            #expect(MetricsTests.value(of: #"status_legacy_requests_total{path="/status/summary"}"#, in: metrics) == 1)
        }
        let config = try CortexConfiguration.load(file: nil, environment: ["FAIL_ON_LEGACY": "true", "LEGACY_SUNSET": "2027-03-01"])
        #expect(config.status.failOnLegacy && config.status.legacySunset != nil)
        for bad in ["2027-3-1", "next week", "2027-02-30"] {
            #expect(throws: ConfigurationError.self, "\(bad)") {
                try CortexConfiguration.load(file: nil, environment: ["LEGACY_SUNSET": bad])
            }
        }
        let strict = try await TestServer.make { $0.status = config.status }
        try await strict.test { client in
            let gone = try await client.get("/status/summary")
            #expect(gone.status == .gone && gone.body.jsonObject["code"] as? String == "legacy_path_removed")
            #expect(gone.headers[.sunset] == "Mon, 01 Mar 2027 00:00:00 GMT" && gone.headers[.xStatusPath] == "legacy")
            #expect(try await client.get("/api/status/summary").status == .ok)
            let metrics = try await client.get("/metrics").body.text
            #expect(
                MetricsTests.value(of: #"status_legacy_requests_total{path="/status/summary"}"#, in: metrics) == 1, "a refused hit counts")
        }
    }
}
