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
}
