import CortexCore
import CortexRuntime
import CortexServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

/// The order of a billed inference, driven through `InferencePipeline` itself on a route of the
/// test's own: what each refusal leaves on the ledger, on SQLite and PostgreSQL.
@Suite("Inference pipeline: parse, validate, limit, hold, run, settle or release")
struct InferencePipelineTests {
    /// `echo`: one FP32 input `x` of shape `[-1, 2]`, returned as `y`; it throws while `failing` is set.
    final class EchoModel: InferenceModel {
        let failing = Atomic<Bool>(false)
        let runs = Atomic<Int>(0)
        var metadata: ModelMetadata {
            ModelMetadata(
                name: "echo", version: "1", platform: "test",
                inputs: [TensorSpec(name: "x", datatype: .fp32, shape: TensorShape([-1, 2]))],
                outputs: [TensorSpec(name: "y", datatype: .fp32, shape: TensorShape([-1, 2]))])
        }

        struct Failure: Error {}

        func infer(_ inputs: [Tensor]) throws -> [Tensor] {
            runs.add(1, ordering: .relaxed)
            if failing.load(ordering: .relaxed) { throw Failure() }
            return inputs.map { Tensor(name: "y", datatype: $0.datatype, shape: $0.shape, data: $0.data) }
        }
    }

    static let demo: HTTPFields = [.xAPIKey: CortexConfiguration.demoAPIKey]

    /// A server billing `echo` 0.5 a request (demo tenant: 10 credits), at most 2 requests per
    /// 100 s for demo on `echo`, and `POST /pipeline` running the pipeline on the body's numbers.
    static func withPipeline(
        _ database: TestServer.Database,
        _ body: @escaping @Sendable (any TestClientProtocol, EchoModel, TestServer) async throws -> Void
    ) async throws {
        let server = try await TestServer.make(database: database) { configuration in
            configuration.auth.requireAPIKey = true
            configuration.auth.demo = .on
            configuration.billing.prices = ["echo": Credits(decimal: "0.5") ?? .zero]
            configuration.billing.demoCredits = Credits(decimal: "10") ?? .zero
            configuration.rateLimit.overrides = [.init(tenant: "demo", model: "echo", requestsPerSecond: 0.01, burst: 2)]
        }
        let model = EchoModel()
        server.dependencies.registry.register(model, source: ModelSource(name: "echo", path: "memory"))
        let dependencies = server.dependencies
        let runner = InferenceRunner(registry: dependencies.registry, metrics: dependencies.metrics, statistics: dependencies.statistics)
        let pipeline = InferencePipeline(
            runner: runner,
            modelLimits: ModelRateLimits(
                limiter: dependencies.rateLimiter, configuration: dependencies.configuration.rateLimit, metrics: dependencies.metrics),
            billing: dependencies.billing)
        try await server.test(addingRoutes: { router in
            let protected = router.group().add(middleware: APIKeyMiddleware(authenticator: dependencies.authenticator, scope: .infer))
            // A cost known only from the output, as an LLM call's: 3 credits held, the body's number
            // charged (capped at the hold); "limited" is refused by the extra limit, "fail" fails the work.
            protected.post("/metered") { request, context in
                let buffer = try await request.body.collect(upTo: 1 << 16)
                let text = String(buffer: buffer)
                let cost = Billing.Cost<String>(held: Credits(decimal: "3") ?? .zero) { output, held in
                    let cost = Credits(decimal: output) ?? .zero
                    return (cost, ResponseContent(json: #"{"held":"\#(held.map(\.description) ?? "none")"}"#))
                }
                return try await pipeline.charge(
                    cost, model: "metered", request: request, body: buffer, context: context,
                    limits: { if text == "limited" { throw APIError(status: 429, code: "token_rate_limited", message: "limited") } }
                ) {
                    if text == "fail" { throw EchoModel.Failure() }
                    return text
                }
                .response()
            }
            protected.post("/pipeline") { request, context in
                let model = try runner.model(named: "echo", logger: context.logger)
                return try await pipeline.infer(model, request: request, context: context) {
                    let buffer = try await request.body.collect(upTo: 1 << 16)
                    guard let text = buffer.getString(at: 0, length: buffer.readableBytes), text != "unreadable" else {
                        throw APIError.invalidJSON("unreadable")
                    }
                    let values = text.split(separator: ",").compactMap { Double($0) }
                    let input = Tensor(name: "x", datatype: .fp32, shape: TensorShape([1, values.count]), data: .float(values))
                    return (buffer, [input], values.count)
                } render: { outputs, count in
                    ResponseContent(json: #"{"count":\#(count),"outputs":\#(outputs.count)}"#)
                }
            }
        }) { client in
            try await body(client, model, server)
        }
    }

    static func balance(_ client: some TestClientProtocol) async throws -> (available: Decimal?, held: Decimal?) {
        let me = try await client.get("/me", headers: demo).body.jsonObject
        return ((me["balance"] as? NSNumber)?.decimalValue, (me["held"] as? NSNumber)?.decimalValue)
    }

    @Test(
        "each refusal leaves the balance whole and the model unrun; a failed run is released; a success is settled",
        arguments: TestServer.Database.allCases)
    func order(database: TestServer.Database) async throws {
        try await Self.withPipeline(database) { client, model, server in
            // Unreadable (the route's parse) and invalid (the signature: 3 values where 2 go): no hold, no run.
            let unreadable = try await client.post("/pipeline", json: "unreadable", headers: Self.demo)
            #expect(unreadable.status == .badRequest)
            let invalid = try await client.post("/pipeline", json: "1,2,3", headers: Self.demo)
            #expect(invalid.status == .badRequest)
            #expect(model.runs.load(ordering: .relaxed) == 0)
            #expect(try await Self.balance(client) == (Decimal(10), Decimal(0)))

            // A run that fails: held, then released; the client sees the failure, nothing is charged.
            model.failing.store(true, ordering: .relaxed)
            let failed = try await client.post("/pipeline", json: "1,2", headers: Self.demo)
            #expect(failed.status.code == 500)
            #expect(model.runs.load(ordering: .relaxed) == 1)
            #expect(try await Self.balance(client) == (Decimal(10), Decimal(0)))

            // A success: settled before the answer, with the charge in the headers.
            model.failing.store(false, ordering: .relaxed)
            let success = try await client.post("/pipeline", json: "1,2", headers: Self.demo)
            #expect(success.status == .ok)
            #expect(String(buffer: success.body) == #"{"count":2,"outputs":1}"#)
            #expect(success.headers[.xCreditsCharged] == "0.5")
            #expect(success.headers[.xCreditsBalance] == "9.5")
            #expect(try await Self.balance(client) == (Decimal(string: "9.5"), Decimal(0)))

            // The per-model limit (a burst of 2, both spent above): refused before any hold or run.
            let limited = try await client.post("/pipeline", json: "1,2", headers: Self.demo)
            #expect(limited.status == .tooManyRequests)
            #expect(model.runs.load(ordering: .relaxed) == 2)
            #expect(try await Self.balance(client) == (Decimal(string: "9.5"), Decimal(0)))

            let metrics = try await client.get("/metrics").body.text
            #expect(metrics.contains(#"inference_outcome_total{model="echo",outcome="invalid_input"} 2"#))
            #expect(metrics.contains(#"inference_outcome_total{model="echo",outcome="error"} 1"#))
            #expect(metrics.contains(#"inference_outcome_total{model="echo",outcome="success"} 1"#))
            #expect(try await server.dependencies.store.verify().isEmpty, "the ledger is consistent")
        }
    }

    @Test(
        "a cost known from the output: held first, the output's cost settled (never more than held), released when the work fails, nothing held when a limit refuses",
        arguments: TestServer.Database.allCases)
    func metered(database: TestServer.Database) async throws {
        try await Self.withPipeline(database) { client, _, server in
            let limited = try await client.post("/metered", json: "limited", headers: Self.demo)
            #expect(limited.status == .tooManyRequests)
            #expect(try await Self.balance(client) == (Decimal(10), Decimal(0)))

            let failed = try await client.post("/metered", json: "fail", headers: Self.demo)
            #expect(failed.status.code == 500)
            #expect(try await Self.balance(client) == (Decimal(10), Decimal(0)), "released")

            let used = try await client.post("/metered", json: "1.25", headers: Self.demo)
            #expect(used.status == .ok && String(buffer: used.body) == #"{"held":"3"}"#)
            #expect(used.headers[.xCreditsCharged] == "1.25" && used.headers[.xCreditsBalance] == "8.75")

            let over = try await client.post("/metered", json: "7", headers: Self.demo)
            #expect(over.headers[.xCreditsCharged] == "3", "never more than was held")
            #expect(try await Self.balance(client) == (Decimal(string: "5.75"), Decimal(0)))
            #expect(try await server.dependencies.store.verify().isEmpty)
        }
    }
}
