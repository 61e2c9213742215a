import CortexStore
import CortexTestSupport
import Foundation
import Testing

/// Redis over TLS (`rediss://`, as managed Redis services require) against a real `redis-server`
/// speaking TLS on loopback, with a CA and certificates made by `openssl` for the test.
@Suite("Redis over TLS (rediss://)")
struct RedisTLSTests {
    @Test("rediss:// trusting the server's CA works, with a client certificate when Redis asks; another CA, or none, fails")
    func client() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let files = try await UpstreamTLSTests.Certificates.files(in: directory)
        let server = try RedisTestServer(
            tls: .init(certificate: files.certificate, key: files.key, ca: files.ca, clientsNeedCertificates: true))
        let trusted = try RedisClient(
            url: server.url, timeout: .seconds(10),
            tls: RedisTLSFiles(ca: files.ca, certificate: files.certificate, key: files.key))
        #expect(try await trusted.send(["PING"]) == .simpleString("PONG"))
        #expect(try await trusted.send(["SET", "k", "v"]) == .simpleString("OK"))
        #expect(try await trusted.send(["GET", "k"]) == .bulkString(Array("v".utf8)))
        // Redis asks for a client certificate: without one the handshake is refused.
        let anonymous = try RedisClient(url: server.url, timeout: .seconds(10), tls: RedisTLSFiles(ca: files.ca))
        await #expect(throws: (any Error).self) { _ = try await anonymous.send(["PING"]) }
        // The system's roots did not sign the server's certificate.
        let untrusting = try RedisClient(
            url: server.url, timeout: .seconds(10), tls: RedisTLSFiles(certificate: files.certificate, key: files.key))
        await #expect(throws: (any Error).self) { _ = try await untrusting.send(["PING"]) }
        // Plain text to the TLS port gets no reply.
        let plain = try RedisClient(url: "redis://127.0.0.1:\(server.port)", timeout: .milliseconds(500))
        await #expect(throws: (any Error).self) { _ = try await plain.send(["PING"]) }
        // A client certificate without its key (or the reverse) is refused when the client is made.
        #expect(throws: RedisError.self) {
            _ = try RedisClient(url: server.url, tls: RedisTLSFiles(ca: files.ca, certificate: files.certificate))
        }
        #expect(throws: RedisError.self) { _ = try RedisClient(url: server.url, tls: RedisTLSFiles(ca: directory.file("missing.pem"))) }
    }

    @Test(
        "through a real cortex process: REDIS_URL=rediss:// shares the limit through Redis over TLS; TLS files with redis:// stop start-up")
    func binary() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let files = try await UpstreamTLSTests.Certificates.files(in: directory)
        let redis = try RedisTestServer(
            tls: .init(certificate: files.certificate, key: files.key, ca: files.ca, clientsNeedCertificates: true))
        let (cortex, port) = try await CortexProcess.serve(
            environment: [
                "REDIS_URL": redis.url, "REDIS_TLS_CA_FILE": files.ca, "REDIS_TLS_CERT_FILE": files.certificate,
                "REDIS_TLS_KEY_FILE": files.key, "RATE_LIMIT_RPS": "0.1", "RATE_LIMIT_BURST": "2", "REDIS_TIMEOUT_MS": "2000",
            ],
            directory: directory)
        defer { cortex.terminate() }
        var statuses: [Int] = []
        // A burst of 2 refilled once every 10 s: whatever the machine's speed, some of the 6 are refused.
        for _ in 0..<6 {
            statuses.append(
                try RawHTTPConnection.request(port: port, method: "POST", path: "/api/v1/score", body: LedgerLoadTests.lead)?.status ?? 0)
        }
        #expect(statuses.prefix(2).allSatisfy { $0 == 200 } && statuses.contains(429), "\(statuses)")
        let ready = try #require(try RawHTTPConnection.request(port: port, path: "/ready"))
        #expect(ready.body.contains("shared through rediss://localhost:\(redis.port)"), "\(ready.body)")
        let metrics = try #require(try RawHTTPConnection.request(port: port, path: "/metrics")).body
        #expect(metrics.contains("rate_limit_backend_up 1"))
        #expect(!cortex.logEvents.contains { $0["event"] as? String == "RATE_LIMIT_FALLBACK" }, "decided by Redis throughout")
        // The decisions were Redis's: its key for the demo key's bucket exists.
        let client = try RedisClient(
            url: redis.url, timeout: .seconds(10), tls: RedisTLSFiles(ca: files.ca, certificate: files.certificate, key: files.key))
        let keys = try await client.send(["DBSIZE"])
        #expect(keys != .integer(0), "\(keys)")

        let run = try await CortexProcess.runToCompletion(
            CortexProcess.binary, ["config", "check"],
            environment: ["REDIS_URL": "redis://127.0.0.1:\(redis.port)", "REDIS_TLS_CA_FILE": files.ca], timeout: .seconds(60))
        #expect(run.status != 0, "\(run.stdout)")
        #expect((run.stdout + run.stderr).contains("REDIS_TLS_CA_FILE"), "\(run.stdout + run.stderr)")
    }
}
