import CortexCore
import CortexServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("Rate limits over HTTP")
struct RateLimitTests {
    static let lead = #"{"features":{"pages_viewed":12}}"#
    static var demo: HTTPFields { [.xAPIKey: CortexConfiguration.demoAPIKey] }

    static func server(clock: ManualClock, _ configure: (inout CortexConfiguration) -> Void = { _ in }) async throws -> TestServer {
        try await TestServer.make(clock: clock) { configuration in
            configuration.auth.requireAPIKey = true
            configuration.auth.demo = .on
            configuration.rateLimit.requestsPerSecond = 5
            configuration.rateLimit.burst = 5
            configure(&configuration)
        }
    }

    @Test("RPS 5, burst 5: of 20 requests at once 5 pass and 15 get 429 with Retry-After; the bucket refills at 5/s")
    func tightBurst() async throws {
        let clock = ManualClock()
        let server = try await Self.server(clock: clock)
        try await server.test { client async throws in
            var statuses: [Int] = []
            var last: TestResponse?
            for _ in 0..<20 {
                let response = try await client.post("/api/v1/score", json: Self.lead, headers: Self.demo)
                statuses.append(Int(response.status.code))
                last = response
            }
            #expect(statuses.prefix(5).allSatisfy { $0 == 200 })
            #expect(statuses.dropFirst(5).allSatisfy { $0 == 429 })
            let refused = try #require(last)
            #expect(refused.headers[.retryAfter] == "1")
            #expect(refused.headers[.rateLimitLimit] == "5")
            #expect(refused.headers[.rateLimitRemaining] == "0")
            #expect(refused.headers[.rateLimitReset] == "1")
            let body = refused.body.jsonObject
            #expect(body["code"] as? String == "rate_limited")
            #expect((body["retry_after_s"] as? NSNumber)?.doubleValue == 0.2)

            clock.advance(milliseconds: 400)
            let refilled = try await client.post("/api/v1/score", json: Self.lead, headers: Self.demo)
            #expect(refilled.status == .ok)
            #expect(refilled.headers[.rateLimitRemaining] == "1")
            #expect(try await client.post("/api/v1/score", json: Self.lead, headers: Self.demo).status == .ok)
            #expect(try await client.post("/api/v1/score", json: Self.lead, headers: Self.demo).status.code == 429)

            let metrics = try await client.get("/metrics").body.text
            #expect(metrics.contains(#"rate_limit_decisions_total{result="allowed"} 7"#))
            // /me shows the limit that applies (and is itself limited: it was refused here).
            clock.advance(milliseconds: 1000)
            let limits = try await client.get("/me", headers: Self.demo).body.jsonObject["limits"] as? [String: Any]
            let limit = limits?["rate_limit"] as? [String: Any]
            #expect((limit?["rps"] as? NSNumber)?.doubleValue == 5)
            #expect((limit?["burst"] as? NSNumber)?.intValue == 5)
            #expect(metrics.contains(#"rate_limit_decisions_total{result="limited"} 16"#))
        }
    }

    @Test("limits are per key: another key has its own budget; probes and metadata are never limited")
    func perKey() async throws {
        let clock = ManualClock()
        let server = try await Self.server(clock: clock) { $0.rateLimit.burst = 1 }
        let store = server.dependencies.store
        let tenant = try await store.createTenant(named: "acme")
        let other = try await store.issueKey(tenantID: tenant.id, scopes: [.infer], expiresAt: nil)
        try await server.test { client async throws in
            #expect(try await client.post("/api/v1/score", json: Self.lead, headers: Self.demo).status == .ok)
            #expect(try await client.post("/api/v1/score", json: Self.lead, headers: Self.demo).status.code == 429)
            #expect(try await client.post("/api/v1/score", json: Self.lead, headers: [.xAPIKey: other.key]).status == .ok)
            for _ in 0..<10 {
                #expect(try await client.get("/health").status == .ok)
                #expect(try await client.get("/v2/models/lead-scoring").status == .ok)
            }
        }
    }

    @Test("anonymous requests (REQUIRE_API_KEY=false) are limited by client address")
    func anonymous() async throws {
        let clock = ManualClock()
        let server = try await Self.server(clock: clock) { configuration in
            configuration.auth.requireAPIKey = false
            configuration.rateLimit.burst = 1
        }
        try await server.test { client async throws in
            #expect(try await client.post("/api/v1/score", json: Self.lead).status == .ok)
            let refused = try await client.post("/api/v1/score", json: Self.lead)
            #expect(refused.status.code == 429)
            #expect(refused.headers[.rateLimitLimit] == "1")
            // A key holder is not charged to the anonymous budget.
            #expect(try await client.post("/api/v1/score", json: Self.lead, headers: Self.demo).status == .ok)
        }
    }

    @Test("a refused request is never billed and never reaches the model")
    func beforeBilling() async throws {
        let clock = ManualClock()
        let server = try await Self.server(clock: clock) { configuration in
            configuration.rateLimit.burst = 2
            configuration.billing.prices = ["lead-scoring": Credits(microcredits: 1_000_000)]
            configuration.billing.demoCredits = Credits(microcredits: 10_000_000)
        }
        try await server.test { client async throws in
            for _ in 0..<6 {
                _ = try await client.post("/api/v1/score", json: Self.lead, headers: Self.demo)
            }
            clock.advance(milliseconds: 1000)
            let me = try await client.get("/me", headers: Self.demo).body.jsonObject
            #expect((me["balance"] as? NSNumber)?.intValue == 8)
            let metrics = try await client.get("/metrics").body.text
            #expect(metrics.contains(#"inference_outcome_total{model="lead-scoring",outcome="success"} 2"#))
        }
    }

    @Test("with RATE_LIMIT_RPS unset nothing is limited and no RateLimit headers are sent")
    func off() async throws {
        let clock = ManualClock()
        let server = try await Self.server(clock: clock) { $0.rateLimit.requestsPerSecond = 0 }
        try await server.test { client async throws in
            for _ in 0..<20 {
                let response = try await client.post("/api/v1/score", json: Self.lead, headers: Self.demo)
                #expect(response.status == .ok)
                #expect(response.headers[.rateLimitLimit] == nil)
            }
        }
    }

    @Test("a tenant+model override is one budget for all of the tenant's keys; other tenants keep theirs")
    func tenantModel() async throws {
        let clock = ManualClock()
        let server = try await Self.server(clock: clock) { configuration in
            configuration.rateLimit.burst = 100
            configuration.rateLimit.overrides = [.init(tenant: "acme", model: "lead-scoring", requestsPerSecond: 1, burst: 2)]
        }
        let store = server.dependencies.store
        let acme = try await store.createTenant(named: "acme")
        let first = try await store.issueKey(tenantID: acme.id, scopes: [.infer], expiresAt: nil)
        let second = try await store.issueKey(tenantID: acme.id, scopes: [.infer], expiresAt: nil)
        try await server.test { client async throws in
            #expect(try await client.post("/api/v1/score", json: Self.lead, headers: [.xAPIKey: first.key]).status == .ok)
            #expect(try await client.post("/api/v1/score", json: Self.lead, headers: [.xAPIKey: second.key]).status == .ok)
            // Both keys have budget left of their own, but acme's budget for the model is spent.
            let refused = try await client.post(
                "/v2/models/lead-scoring/infer",
                json: #"{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,10]}]}"#,
                headers: [.xAPIKey: first.key]
            )
            #expect(refused.status.code == 429)
            #expect(refused.headers[.retryAfter] == "1")
            #expect((refused.body.jsonObject["error"] as? String)?.contains("'acme'") == true)
            // The demo tenant has no override: only its per-key limit applies.
            for _ in 0..<5 {
                #expect(try await client.post("/api/v1/score", json: Self.lead, headers: Self.demo).status == .ok)
            }
            clock.advance(milliseconds: 1000)
            #expect(try await client.post("/api/v1/score", json: Self.lead, headers: [.xAPIKey: second.key]).status == .ok)
        }
    }

    @Test("RATE_LIMIT_OVERRIDES: parsing, and the most specific match wins")
    func overrides() throws {
        let config = try CortexConfiguration.load(
            file: nil,
            environment: ["RATE_LIMIT_OVERRIDES": "acme/lead-scoring=50:100, acme/*=20, */big=2:3"]
        )
        let limits = config.rateLimit
        #expect(limits.overrides.count == 3)
        #expect(limits.override(tenant: "acme", model: "lead-scoring") == GCRA(rate: 50, burst: 100))
        #expect(limits.override(tenant: "acme", model: "other") == GCRA(rate: 20, burst: 20))
        #expect(limits.override(tenant: "beta", model: "big") == GCRA(rate: 2, burst: 3))
        #expect(limits.override(tenant: "beta", model: "small") == nil)
        for bad in ["acme=5", "acme/x=0", "acme/x=5:0", "bad name/x=1", "acme/x=abc"] {
            #expect(throws: ConfigurationError.self) {
                try CortexConfiguration.load(file: nil, environment: ["RATE_LIMIT_OVERRIDES": bad])
            }
        }
    }

    @Test("rate_limit.overrides in YAML: a list of mappings, the same rules as the variable")
    func yamlOverrides() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write(
            "cortex.yaml",
            """
            rate_limit:
              overrides:
                - {tenant: acme, model: lead-scoring, rps: 50, burst: 100}
                - {tenant: acme, rps: 0.5}
                - {model: big, rps: 2, burst: 3}
            """
        )
        let limits = try CortexConfiguration.load(file: file, environment: [:]).rateLimit
        #expect(limits.override(tenant: "acme", model: "lead-scoring") == GCRA(rate: 50, burst: 100))
        #expect(limits.override(tenant: "acme", model: "other") == GCRA(rate: 0.5, burst: 1))
        #expect(limits.override(tenant: "beta", model: "big") == GCRA(rate: 2, burst: 3))
        let bad: [(String, String)] = [
            ("- {tenant: acme}", "rate_limit.overrides[0].rps"),
            ("- {tenant: acme, rps: 1, brust: 2}", "rate_limit.overrides[0].brust"),
            ("- acme/x=1", "rate_limit.overrides[0]"),
            ("- {tenant: 'bad name', rps: 1}", "rate_limit.overrides"),
        ]
        for (entry, key) in bad {
            let file = try directory.write("bad.yaml", "rate_limit:\n  overrides:\n    \(entry)\n")
            #expect {
                try CortexConfiguration.load(file: file, environment: [:])
            } throws: { error in
                (error as? ConfigurationError)?.key == key
            }
        }
    }
}
