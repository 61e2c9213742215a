import CortexTestSupport
import Foundation
import Testing

/// Nothing secret leaves Cortex: a real process is given an API key, the admin token, an LLM
/// provider's key (which the provider echoes back in an error, as real ones do) and a Redis
/// password, then every kind of route is driven with them, right and wrong, and every answer,
/// the metrics, `/status` and the whole log are searched for each secret.
@Suite("Secrets stay out of answers, metrics, status and logs (real process)")
struct SecretsTests {
    static let apiKey = "acme-secret-key-0000000001"
    static let adminToken = "admin-secret-token-0123456789"
    static let providerKey = "sk-provider-secret-9876543210"
    static let redisPassword = "redis-secret-pass-42"

    @Test("every route, with and without the right secrets: no answer, metric, status or log line carries one")
    func secrets() async throws {
        // The provider fails, quoting the key it was sent, as providers' 401s and proxies' errors do.
        let upstream = try await FakeLLMServer(
            .fail(status: 500, message: "invalid credentials: Bearer \(Self.providerKey)"), models: ["fake-model"])
        let redis = try RedisTestServer(password: Self.redisPassword)
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(
            environment: [
                "API_KEY_ACME": Self.apiKey, "ADMIN_TOKEN": Self.adminToken, "LLM_PRIMARY_URL": upstream.url,
                "LLM_PRIMARY_KIND": "openai", "LLM_PRIMARY_MODEL": "fake-model", "LLM_PRIMARY_API_KEY": Self.providerKey,
                "PRIMARY_POLL_INTERVAL_S": "0.05", "REDIS_URL": "redis://:\(Self.redisPassword)@127.0.0.1:\(redis.port)",
                "RATE_LIMIT_RPS": "1000", "LOG_LEVEL": "debug",
            ],
            directory: directory)
        defer { cortex.terminate() }
        try await CortexProcess.waitForPrimaryLLM(port: port)
        let key = [("X-API-Key", Self.apiKey)]
        let admin = [("Authorization", "Bearer \(Self.adminToken)")]
        let requests: [(method: String, path: String, body: String, headers: [(String, String)])] = [
            ("GET", "/health", "", []), ("GET", "/ready", "", []), ("GET", "/status", "", []), ("GET", "/api/status/summary", "", []),
            ("GET", "/me", "", key), ("GET", "/ops/model-status", "", key),
            ("POST", "/v2/models/lead-scoring/infer", #"{"inputs":[]}"#, key),
            ("POST", "/v1/chat/completions", #"{"model":"fake-model","messages":[{"role":"user","content":"hi"}]}"#, key),
            ("POST", "/generate", #"{"prompt":"hi","stream":true}"#, key),
            ("POST", "/v1/embeddings", #"{"model":"fake-model","input":"hi"}"#, key),
            // Secrets in the wrong places: a key as the admin token, the admin token as a key, the provider's key as a key.
            ("GET", "/admin/tenants", "", [("Authorization", "Bearer \(Self.apiKey)")]),
            ("GET", "/me", "", [("X-API-Key", Self.adminToken)]), ("GET", "/me", "", [("X-API-Key", Self.providerKey)]),
            ("GET", "/admin/tenants", "", admin), ("GET", "/admin/tenants/acme/keys", "", admin),
            ("GET", "/admin/tenants/acme/credits", "", admin), ("GET", "/admin/config", "", admin),
            ("POST", "/admin/config", #"{"ab_weight_a":"x"}"#, admin), ("POST", "/admin/reload-auth", "", admin),
            ("POST", "/ops/reload-auth", "", admin), ("GET", "/metrics", "", []),
        ]
        var answers: [String] = []
        for request in requests {
            // On a thread of its own: the fake provider answering some of these runs in this process.
            let answer = try await RawHTTPConnection.requestOnThread(
                port: port, method: request.method, path: request.path, body: request.body, demoKey: "", headers: request.headers)
            answers.append("\(request.method) \(request.path) -> \(answer?.status ?? 0): \(answer?.body ?? "(none)")")
        }
        // The chat reached the provider with its key, and failed with the provider's message, redacted.
        #expect(upstream.authorizations.contains("Bearer \(Self.providerKey)"))
        #expect(answers.contains { $0.contains("/v1/chat/completions -> 503") && $0.contains("invalid credentials") }, "\(answers)")
        let check = try await CortexProcess.runToCompletion(
            CortexProcess.binary, ["config", "check"],
            environment: [
                "API_KEY_ACME": Self.apiKey, "ADMIN_TOKEN": Self.adminToken, "LLM_PRIMARY_URL": upstream.url,
                "LLM_PRIMARY_MODEL": "fake-model", "LLM_PRIMARY_API_KEY": Self.providerKey,
                "REDIS_URL": "redis://:\(Self.redisPassword)@127.0.0.1:\(redis.port)",
            ],
            timeout: .seconds(60))
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        cortex.terminate()
        let everything = answers + [cortex.stdout, cortex.stderr, check.stdout, check.stderr]
        for secret in [Self.apiKey, Self.adminToken, Self.providerKey, Self.redisPassword] {
            for text in everything where text.contains(secret) {
                Issue.record("'\(secret)' appears in: \(text.prefix(400))")
            }
        }
        // The log says what happened (so the search above read real lines).
        #expect(cortex.stdout.contains("LLM_UNAVAILABLE") || cortex.stdout.contains("llm_unavailable"), "\(cortex.stdout.suffix(500))")
    }
}
