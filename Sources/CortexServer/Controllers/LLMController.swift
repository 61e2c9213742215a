import CortexCore
import CortexRuntime
public import Foundation
public import HTTPTypes
public import Hummingbird
import Logging

/// The LLM routes: the inference platform's `POST /generate`, the LLM assistant's `POST /chat`, and OpenAI's
/// `POST /v1/chat/completions`, `POST /v1/completions` and `GET /v1/models`, streaming or not.
///
/// Billing is per token. Before anything is sent upstream, the most the request can cost (its
/// prompt's bytes as tokens, which no tokenizer exceeds, plus `max_tokens`) is held, so
/// concurrent requests can never overrun a balance. Then the provider's reported usage is
/// settled; with no usage reported the held estimate is charged, never zero; a stream cut after
/// its first token is charged for the tokens delivered.
public struct LLMController<Context: AuthenticatedContext>: Sendable {
    /// The deployments, the default (for `/generate` and `/chat` without `model`) first.
    let gateways: [LLMGateway]
    /// Deployments by the names `model` may take: each deployment's name, then its providers'
    /// model names (the first deployment to use a name keeps it).
    let byName: [String: LLMGateway]
    /// Limits, holds and settles (the per-deployment limit, then the key's tokens).
    let pipeline: InferencePipeline
    /// Counts each key's tokens against `LLM_TOKENS_PER_MINUTE`.
    let tokenLimits: TokenRateLimits
    let maxBodyBytes: Int
    /// When the deployment came up, for `/v1/models`.
    let created: Int

    /// Creates the controller.
    public init(
        gateways: [LLMGateway], pipeline: InferencePipeline, tokenLimits: TokenRateLimits, maxBodyBytes: Int,
        created: Date = Date()
    ) {
        precondition(!gateways.isEmpty, "the LLM routes need a deployment")
        self.gateways = gateways
        self.byName = Self.names(gateways)
        self.pipeline = pipeline
        self.tokenLimits = tokenLimits
        self.maxBodyBytes = maxBodyBytes
        self.created = Int(created.timeIntervalSince1970)
    }

    /// Deployments by the names `model` may take: each deployment's name, then its providers'
    /// model names (the first deployment to use a name keeps it).
    static func names(_ gateways: [LLMGateway]) -> [String: LLMGateway] {
        var byName: [String: LLMGateway] = [:]
        for gateway in gateways { byName[gateway.configuration.deployment] = gateway }
        for gateway in gateways {
            for provider in gateway.configuration.providers where byName[provider.model] == nil { byName[provider.model] = gateway }
        }
        return byName
    }

    /// The deployment a body asks for: `model` (required on `/v1/*`), else the default.
    ///
    /// - Throws: 400 without `model` on `/v1/*`, 404 `model_not_found` for a name not served.
    func gateway(for body: JSONValue, route: LLMRoute) throws(APIError) -> LLMGateway {
        guard let value = body["model"], value != .null else {
            if route.isOpenAI { throw APIError.invalidJSON("missing field 'model'") }
            return gateways[0]
        }
        let model = try value.string(at: "model")
        guard let gateway = byName[model] else {
            let names = gateways.map { "'\($0.configuration.deployment)'" }.joined(separator: ", ")
            throw APIError(
                status: 404, code: "model_not_found",
                message: "model '\(model)' is not served here; use \(names) (GET /v1/models lists them)")
        }
        return gateway
    }

    /// Adds the routes (all need an API key when keys are required); `/chat` goes on `chat`,
    /// the group with the LLM assistant's CORS.
    public func addRoutes(to router: some RouterMethods<Context>) {
        for route in [LLMRoute.generate, .chat, .chatCompletions, .completions] {
            router.post(RouterPath(route.rawValue)) { request, context in try await self.handle(route, request, context) }
        }
        router.get("/v1/models") { _, context in self.models(context) }
        router.get("/v1/models/{model}") { _, context in
            let name = context.parameters.get("model") ?? ""
            guard byName[name] != nil else {
                return Self.openAIError(APIError.modelNotFound(name), requestID: context.requestID)
            }
            return Response.json(.ok, self.modelObject(name))
        }
    }

    func handle(_ route: LLMRoute, _ request: Request, _ context: Context) async throws -> Response {
        guard route.isOpenAI else { return try await answer(route, request, context) }
        // OpenAI's clients read errors as `{"error": {"message", "type", "code"}}`.
        do {
            return try await answer(route, request, context)
        } catch let error as APIError {
            return Self.openAIError(error, requestID: context.requestID)
        }
    }

    /// Reads and checks the call, then takes the pipeline's steps: the deployment's limit and the
    /// key's tokens, the hold of the most the call can cost, the call, the settlement of its usage.
    private func answer(_ route: LLMRoute, _ request: Request, _ context: Context) async throws -> Response {
        let buffer = try await request.collectBody(limit: maxBodyBytes)
        let (body, memberText) = try JSONValue.parseKeepingMemberText(buffer)
        _ = try body.object(at: "")
        let gateway = try gateway(for: body, route: route)
        let deployment = gateway.configuration.deployment
        let call = try LLMCall(route: route, body: body, memberText: memberText, configuration: gateway.configuration)
        if call.stream, request.headers[.idempotencyKey] != nil {
            throw APIError(
                status: 400, code: "invalid_idempotency_key",
                message: "Idempotency-Key cannot be replayed for a stream; send it with \"stream\": false, or retry the stream without it")
        }
        let estimate = TokenUsage(promptTokens: LLMGateway.promptTokenBound(call.request), completionTokens: call.maxTokens)
        let answer = LLMAnswer(route: route, requestID: context.requestID, created: Int(Date().timeIntervalSince1970), model: deployment)
        let spend = tokenLimits.spender(context: context)
        let checkTokens = { try await tokenLimits.check(context: context) }
        if call.stream {
            let held: Billing.HeldCharge?
            switch try await pipeline.hold(
                gateway.cost(estimate), model: deployment, request: request, body: buffer, context: context, limits: checkTokens)
            {
            case .replay(let stored): return Billing.Charged.replay(stored).response()
            case .notBilled: held = nil
            case .held(let charge): held = charge
            }
            return try await stream(
                call, gateway: gateway, answer: answer, estimate: estimate, held: held, spend: spend, logger: context.logger)
        }
        let path = gateway.warmup.path.rawValue
        // The usage reported, else the estimate held; never more than was held.
        let cost = Billing.Cost<ChatResponse>(held: gateway.cost(estimate)) { response, held in
            var summary = LLMAnswer.Summary(
                finishReason: response.finishReason, tokens: response.usage ?? estimate, usageReported: response.usage != nil,
                provider: response.provider, path: path)
            let cost = gateway.cost(summary.tokens)
            summary.charged = held.map { min(cost, $0) }
            return (cost, ResponseContent(json: answer.whole(response, summary: summary)))
        }
        return try await pipeline.charge(cost, model: deployment, request: request, body: buffer, context: context, limits: checkTokens) {
            let response = try await RequestTracing.span(
                "llm", kind: .client, propagates: true, attributes: { $0["cortex.deployment"] = deployment }
            ) { try await gateway.complete(call.request, logger: context.logger) }
            let tokens = response.usage ?? estimate
            gateway.recordTokens(tokens, provider: response.provider)
            await spend(tokens)
            return response
        }
        .response()
    }

    /// Starts the stream (a failure before the first token is an ordinary error response, after
    /// the hold was released), then sends each token as it comes and settles at the end
    /// (``LLMStreamSettlement`` decides what is charged and how the stream ends).
    private func stream(
        _ call: LLMCall, gateway: LLMGateway, answer: LLMAnswer, estimate: TokenUsage, held: Billing.HeldCharge?,
        spend: @escaping @Sendable (TokenUsage) async -> Void, logger: Logger
    ) async throws -> Response {
        let started = ContinuousClock.now
        let deltas: ChatDeltaStream
        let provider: String
        do {
            (deltas, provider) = try await RequestTracing.span("llm", kind: .client, propagates: true) {
                try await gateway.stream(call.request, logger: logger)
            }
        } catch {
            if let held { await pipeline.billing.release(held) }
            throw error
        }
        let (billing, path) = (pipeline.billing, gateway.warmup.path.rawValue)
        var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        headers[.xLLMProvider] = provider
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                var settlement = LLMStreamSettlement(estimate: estimate)
                // OpenAI's opening chunk goes out in one write with the first token (already here:
                // the stream was handed over after it), or with whatever ends the stream.
                func withOpening(_ buffer: ByteBuffer) -> ByteBuffer {
                    guard settlement.takeOpening(), var head = answer.start() else { return buffer }
                    var buffer = buffer
                    head.writeBuffer(&buffer)
                    return head
                }
                var iterator = deltas.makeAsyncIterator()
                while settlement.reading {
                    let next: ChatDelta?
                    do {
                        next = try await iterator.next()
                    } catch {
                        settlement.failed(error)
                        break
                    }
                    guard let delta = next else { break }
                    guard case .send(let first) = settlement.received(delta) else { continue }
                    if first {
                        let elapsed = started.duration(to: .now).components
                        gateway.metrics.timeToFirstToken.recordNanoseconds(
                            elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
                    }
                    do { try await writer.write(withOpening(answer.delta(delta))) } catch { settlement.clientLeft() }
                }
                // A stream ends early, without an error, when the server cuts the task (drain timeout).
                settlement.ended(cancelled: Task.isCancelled)
                let tokens = settlement.tokens
                gateway.recordTokens(tokens, provider: provider)
                await spend(tokens)
                gateway.metrics.record(provider: provider, settlement.providerOutcome)
                var summary = LLMAnswer.Summary(
                    finishReason: settlement.finishReason, tokens: tokens, usageReported: settlement.usage != nil, provider: provider,
                    path: path)
                var billingFailure: APIError?
                if let held {
                    let cost = gateway.cost(tokens)
                    do throws(APIError) {
                        try await billing.settle(held, cost: cost, storing: nil)
                        summary.charged = min(cost, held.amount)
                    } catch {
                        billingFailure = error
                    }
                }
                let last: ByteBuffer
                switch settlement.ending(billingFailure: billingFailure) {
                case .none:
                    return
                case .cut(let failure, let delivered):
                    logger.warning(
                        "LLM_STREAM_CUT", metadata: ["provider": "\(provider)", "tokens_delivered": "\(delivered)", "error": "\(failure)"])
                    last = answer.error(code: "stream_cut", message: "\(provider) stopped after \(delivered) tokens: \(failure)")
                case .billingFailed(let failure):
                    last = answer.error(code: failure.code, message: failure.message)
                case .end:
                    last = answer.end(summary, includeUsage: call.includeUsage)
                }
                try? await writer.write(withOpening(last))
                try? await writer.finish(nil)
            }
        )
    }

    /// `GET /v1/models`: the deployments, as OpenAI lists models.
    func models(_ context: Context) -> Response {
        var json = JSONWriter(capacity: 160)
        json.beginObject()
        json.member("object", "list")
        json.key("data")
        json.beginArray()
        for gateway in gateways { json.raw(modelObject(gateway.configuration.deployment)) }
        json.endArray()
        json.endObject()
        return Response.json(.ok, json.text)
    }

    private func modelObject(_ name: String) -> String {
        var json = JSONWriter(capacity: 96)
        json.beginObject()
        json.member("id", name)
        json.member("object", "model")
        json.member("created", created)
        json.member("owned_by", "cortex")
        json.endObject()
        return json.text
    }

    /// An error in OpenAI's shape, with Cortex's code and request id.
    static func openAIError(_ error: APIError, requestID: String) -> Response {
        var response = error.response(requestID: requestID)
        var json = JSONWriter(capacity: 256)
        json.beginObject()
        json.key("error")
        json.beginObject()
        json.member("message", error.message)
        json.member("type", error.status >= 500 ? "server_error" : error.status == 429 ? "rate_limit_error" : "invalid_request_error")
        json.member("code", error.code)
        json.key("param")
        json.null()
        json.endObject()
        json.member("request_id", requestID)
        json.endObject()
        response.body = ResponseBody(byteBuffer: ByteBuffer(string: json.text))
        return response
    }
}

extension HTTPField.Name {
    /// The provider that answers a stream (its head is sent before the last token is known).
    // swift-format-ignore: NeverForceUnwrap
    // A literal, valid field name.
    public static let xLLMProvider = Self("X-LLM-Provider")!
}
