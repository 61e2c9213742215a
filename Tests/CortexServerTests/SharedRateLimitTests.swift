import AsyncHTTPClient
import CortexTestSupport
import Foundation
import Testing

/// Rate limits shared by real Cortex processes through a real Redis.
@Suite("Shared rate limits through Redis (real processes)", .serialized)
struct SharedRateLimitTests {
    @Test("two processes sharing one Redis admit one budget between them, not one each")
    func twoReplicas() async throws {
        let redis = try RedisTestServer()
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let environment = ["REDIS_URL": redis.url, "RATE_LIMIT_RPS": "5", "RATE_LIMIT_BURST": "5", "REDIS_TIMEOUT_MS": "1000"]
        var first = environment
        first["DATABASE_URL"] = "sqlite:" + directory.file("a.db")
        var second = environment
        second["DATABASE_URL"] = "sqlite:" + directory.file("b.db")
        let (a, portA) = try await CortexProcess.serve(environment: first, directory: directory)
        defer { a.terminate() }
        let (b, portB) = try await CortexProcess.serve(environment: second, directory: directory)
        defer { b.terminate() }
        let start = ContinuousClock.now
        var statuses: [Int] = []
        for index in 0..<20 {
            let port = index.isMultiple(of: 2) ? portA : portB
            statuses.append(
                try RawHTTPConnection.request(port: port, method: "POST", path: "/api/v1/score", body: LedgerLoadTests.lead)?.status ?? 0)
        }
        let elapsed =
            Double((ContinuousClock.now - start).components.attoseconds) / 1e18 + Double((ContinuousClock.now - start).components.seconds)
        let admitted = statuses.filter { $0 == 200 }.count
        // The burst, plus what the rate refills while the loop runs (the documented tolerance).
        #expect(admitted >= 5 && Double(admitted) <= 5 + (5 * elapsed).rounded(.up), "admitted \(admitted) in \(elapsed) s")
        #expect(statuses.allSatisfy { $0 == 200 || $0 == 429 })
        #expect(statuses.filter { $0 == 429 }.count >= 20 - 5 - Int((5 * elapsed).rounded(.up)))
    }

    @Test("Redis stopped under load: no 5xx, one fallback log line; Redis back: shared limits resume without a restart")
    func fallbackAndReturn() async throws {
        let redis = try RedisTestServer()
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(
            environment: [
                "REDIS_URL": redis.url, "RATE_LIMIT_RPS": "10000", "RATE_LIMIT_BURST": "10000",
                // Generous, so a busy machine never times out a healthy Redis; a stopped one refuses at once.
                "REDIS_TIMEOUT_MS": "1000",
            ],
            directory: directory
        )
        defer { cortex.terminate() }
        var statuses: [Int] = []
        // Each phase sends for `duration` and at least 20 requests, so a slow machine still sends enough.
        func load(for duration: Duration) throws {
            let end = ContinuousClock.now + duration
            let first = statuses.count
            while ContinuousClock.now < end || statuses.count - first < 20 {
                statuses.append(
                    try RawHTTPConnection.request(port: port, method: "POST", path: "/api/v1/score", body: LedgerLoadTests.lead)?.status
                        ?? 0)
            }
        }
        try load(for: .milliseconds(300))
        redis.stop()
        try load(for: .milliseconds(700))
        let degraded = try #require(try RawHTTPConnection.request(port: port, path: "/ready"))
        #expect(degraded.status == 200, "a Redis outage degrades rate limits, it does not make the replica unready")
        #expect(degraded.body.contains("degraded: local limits"))
        let fallback = try Self.rateLimitStatus(port: port)
        #expect(fallback["mode"] as? String == "fallback")
        #expect((fallback["reason"] as? String)?.isEmpty == false)
        try redis.start()
        // With no traffic at all, the readiness checks' probe (here through /status) finds Redis back.
        var mode = ""
        let deadline = ContinuousClock.now + .seconds(5)
        while mode != "shared", ContinuousClock.now < deadline {
            mode = try Self.rateLimitStatus(port: port)["mode"] as? String ?? ""
            if mode != "shared" { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(mode == "shared")
        try load(for: .milliseconds(300))

        #expect(statuses.count > 50)
        #expect(statuses.allSatisfy { $0 == 200 }, "every request answered: \(Set(statuses))")
        let fallbacks = cortex.logEvents.filter { $0["event"] as? String == "RATE_LIMIT_FALLBACK" }
        #expect(fallbacks.map { $0["state"] as? String } == ["local", "shared"])
        let ready = try #require(try RawHTTPConnection.request(port: port, path: "/ready"))
        #expect(ready.body.contains("shared through redis://127.0.0.1:\(redis.port)"))
        let metrics = try #require(try RawHTTPConnection.request(port: port, path: "/metrics")).body
        #expect(metrics.contains("rate_limit_backend_up 1"))
    }

    /// The `rate_limit` object of `/status`.
    static func rateLimitStatus(port: Int) throws -> [String: Any] {
        let response = try #require(try RawHTTPConnection.request(port: port, path: "/status"))
        #expect(response.status == 200)
        let body = try #require(try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any])
        return try #require(body["rate_limit"] as? [String: Any])
    }
}
