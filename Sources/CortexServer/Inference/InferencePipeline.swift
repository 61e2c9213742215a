public import CortexCore
public import CortexRuntime
public import Hummingbird

/// The order every billed inference of a model follows, in one place; routes only read their
/// wire format into tensors and render the outputs.
///
/// 1. The request is read (the route's `parse`); a refusal counts as the model's `invalid_input`.
/// 2. The tensors are checked against the model's signature (400, nothing runs).
/// 3. The per-tenant-and-model rate limit (429).
/// 4. The variant is chosen (one variant today; traffic management fills this step).
/// 5. The price is held (402 when the balance cannot cover it, and nothing runs).
/// 6. The model runs, through its dynamic batcher when it has one.
/// 7. The hold is settled, durably, before the answer; or released when the model failed.
///
/// Outcome metrics and the `INFERENCE_*` log events come from ``InferenceRunner`` at each step.
///
/// An LLM call takes the same steps after its route has read and checked it: the deployment's
/// limits (requests, then tokens), the hold of the most it can cost, the call, and the settlement
/// of the usage reported (``charge(_:model:request:body:context:limits:work:)``); a stream takes
/// the limits and the hold here (``hold(_:model:request:body:context:limits:)``) and settles when it ends.
public struct InferencePipeline: Sendable {
    let runner: InferenceRunner
    let modelLimits: ModelRateLimits
    let billing: Billing

    /// A pipeline over the runner (validation, prediction), the model limits and billing.
    public init(runner: InferenceRunner, modelLimits: ModelRateLimits, billing: Billing) {
        self.runner = runner
        self.modelLimits = modelLimits
        self.billing = billing
    }

    /// Runs one request to `model`.
    ///
    /// - Parameters:
    ///   - parse: Reads the request: its body as received (for the `Idempotency-Key`'s
    ///     fingerprint), the model's inputs, and whatever `render` needs.
    ///   - render: The answer's body from the model's outputs.
    /// - Returns: The 200 answer (with the `X-Credits-*` headers when billed), or the stored answer
    ///   of an earlier request with the same `Idempotency-Key`.
    public func infer<Context: AuthenticatedContext, Parsed: Sendable>(
        _ model: any InferenceModel,
        request: Request,
        context: Context,
        parse: () async throws -> (body: ByteBuffer, inputs: [Tensor], parsed: Parsed),
        render: ([Tensor], Parsed) throws -> ResponseContent
    ) async throws -> Response {
        let (body, inputs, parsed) = try await runner.rejecting(model, logger: context.logger, parse)
        let validated = try runner.validate(model, inputs: inputs, logger: context.logger)
        let name = model.metadata.name
        // The variant: the model asked for, until traffic management chooses among several.
        return try await charge(.price(billing.configuration.price(of: name)), model: name, request: request, body: body, context: context)
        {
            try render(try await runner.predict(validated), parsed)
        }
        .response()
    }

    /// Steps 3 to 7 for a request already read and checked: the per-model limit (then `limits`,
    /// such as an LLM key's tokens), the hold of `cost.held`, `work`, and the settlement of what
    /// its output cost; or the release of the hold when `work` fails.
    public func charge<Context: AuthenticatedContext, Output>(
        _ cost: Billing.Cost<Output>,
        model: String,
        request: Request,
        body: ByteBuffer,
        context: Context,
        limits: () async throws -> Void = {},
        work: () async throws -> Output
    ) async throws -> Billing.Charged {
        try await modelLimits.check(model: model, context: context)
        try await limits()
        return try await billing.charge(cost, model: model, request: request, body: body, context: context, work: work)
    }

    /// Steps 3 to 5 for work that settles later, when it ends (an LLM stream): the limits and the
    /// hold of `amount`. The caller settles (``Billing/settle(_:cost:storing:)``) or releases.
    public func hold<Context: AuthenticatedContext>(
        _ amount: Credits,
        model: String,
        request: Request,
        body: ByteBuffer,
        context: Context,
        limits: () async throws -> Void = {}
    ) async throws -> Billing.HoldResult {
        try await modelLimits.check(model: model, context: context)
        try await limits()
        return try await billing.hold(amount, model: model, request: request, body: body, context: context)
    }
}
