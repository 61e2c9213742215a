public import CortexCore
public import CortexRuntime
import Dispatch
import Foundation
public import Hummingbird

/// The order every billed inference of a model follows, in one place; routes only read their
/// wire format into tensors and render the outputs.
///
/// 1. The request is read (the route's `parse`); a refusal counts as the model's `invalid_input`.
/// 2. The tensors are checked against the model's signature (400, nothing runs).
/// 3. The per-tenant-and-model rate limit (429).
/// 4. The variant is chosen: where the endpoint has a traffic split (`POST /v1/infer` between `vA`
///    and `vB`, `AB_WEIGHT_A`/`AB_WEIGHT_B`, or the canary's step) and the request names no model,
///    the split picks it (``variant(of:request:context:)``, before the model is looked up, since it
///    decides how the input is read); the answer says which (`X-Model-Variant`).
/// 5. The price is held (402 when the balance cannot cover it, and nothing runs).
/// 6. The model runs, through its dynamic batcher when it has one.
/// 7. The hold is settled, durably, before the answer; or released when the model failed.
/// 8. With shadow traffic on, a copy is queued for the other variant (``ShadowTraffic``: never
///    billed, never limited, never waited for); with a canary running, the variant's outcome and
///    model time feed its analysis (``TrafficControl/recordCanary(model:success:latency:)``).
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
    /// Traffic switches by endpoint (`/v1/infer`'s A/B split).
    let traffic: [String: TrafficControl]
    /// Where shadow copies are queued.
    let shadow: ShadowTraffic?

    /// A pipeline over the runner (validation, prediction), the model limits and billing.
    ///
    /// - Parameters:
    ///   - traffic: Traffic switches by endpoint (`"/v1/infer"`).
    ///   - shadow: The queue of shadow copies (run by the service group).
    public init(
        runner: InferenceRunner, modelLimits: ModelRateLimits, billing: Billing, traffic: [String: TrafficControl] = [:],
        shadow: ShadowTraffic? = nil
    ) {
        self.runner = runner
        self.modelLimits = modelLimits
        self.billing = billing
        self.traffic = traffic
        self.shadow = shadow
    }

    /// The variant chosen for a request: the model that serves it, and the session cookie to set.
    public struct Variant: Sendable {
        public var endpoint: String
        public var model: String
        /// `Set-Cookie` for a browser seen for the first time (with `STICKY_COOKIE`).
        var setCookie: String?
        /// Whether the split chose it (not the request's own `model`).
        var chosen = false
        /// The variant that runs a shadow copy of the request (`SHADOW_ENABLED`).
        var shadow: String?
        /// The endpoint's switches, fed the request's outcome for the canary.
        var control: TrafficControl?
    }

    /// Step 4: the variant of `endpoint` for this request, or `nil` when the endpoint has no split.
    ///
    /// The session is the `STICKY_COOKIE` cookie, else `X-Session-ID`: the same session always gets
    /// the same variant on every replica. Without either, a browser gets a new session cookie (with
    /// `STICKY_COOKIE` set), and any other request is placed by its request id.
    public func variant<Context: RequestIDContext>(of endpoint: String, request: Request, context: Context) -> Variant? {
        guard let control = traffic[endpoint] else { return nil }
        let (split, stickyCookie, shadowEnabled) = control.routing
        guard let split else { return nil }
        var setCookie: String?
        let session: String
        if let name = stickyCookie, let value = Self.cookie(name, in: request.headers[values: .cookie]) {
            session = value
        } else if let header = request.headers[.xSessionID], Self.isSessionID(header) {
            session = header
        } else {
            session = context.requestID
            if let name = stickyCookie { setCookie = "\(name)=\(session); Path=/; HttpOnly; SameSite=Lax" }
        }
        let model = split.variant(for: session)
        runner.metrics.trafficRequest(endpoint: endpoint, variant: model)
        return Variant(
            endpoint: endpoint, model: model, setCookie: setCookie, chosen: true,
            // The other of the split's two variants.
            shadow: shadowEnabled ? split.variants.first { $0.model != model }?.model : nil,
            control: control)
    }

    /// The value of cookie `name` in the request's `Cookie` headers, when it is a sane session id.
    static func cookie(_ name: String, in headers: [String]) -> String? {
        for header in headers {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name else { continue }
                let value = parts[1].trimmingCharacters(in: .whitespaces)
                return isSessionID(value) ? value : nil
            }
        }
        return nil
    }

    /// 1 to 128 printable ASCII characters without spaces, quotes, commas or semicolons.
    static func isSessionID(_ text: some StringProtocol) -> Bool {
        (1...128).contains(text.utf8.count) && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x2C && $0 != 0x3B }
    }

    /// Runs one request to `model`.
    ///
    /// - Parameters:
    ///   - parse: Reads the request: its body as received (for the `Idempotency-Key`'s
    ///     fingerprint), the model's inputs, and whatever `render` needs.
    ///   - render: The answer's body from the model's outputs.
    ///   - shadowInputs: Reads the request into another model's inputs, for its shadow copy;
    ///     `nil` where the route has no shadow traffic.
    /// - Returns: The 200 answer (with the `X-Credits-*` headers when billed), or the stored answer
    ///   of an earlier request with the same `Idempotency-Key`.
    public func infer<Context: AuthenticatedContext, Parsed: Sendable>(
        _ model: any InferenceModel,
        request: Request,
        context: Context,
        variant: Variant? = nil,
        parse: () async throws -> (body: ByteBuffer, inputs: [Tensor], parsed: Parsed),
        render: ([Tensor], Parsed) throws -> ResponseContent,
        shadowInputs: (@Sendable (any InferenceModel) throws -> [Tensor])? = nil
    ) async throws -> Response {
        let chosen = variant.flatMap { $0.chosen ? $0 : nil }
        guard let chosen else {
            return try await run(
                model, request: request, context: context, variant: variant, parse: parse, render: render, shadowInputs: nil)
        }
        // The variant a split chose goes on the model's log lines (REQ_END reads X-Model-Variant)
        // and on its outcome and latency series.
        return try await ServerMetrics.$variant.withValue(chosen.model) {
            try await run(
                model, request: request, context: context, variant: chosen, parse: parse, render: render, shadowInputs: shadowInputs)
        }
    }

    /// ``infer(_:request:context:variant:parse:render:shadowInputs:)``'s steps.
    private func run<Context: AuthenticatedContext, Parsed: Sendable>(
        _ model: any InferenceModel,
        request: Request,
        context: Context,
        variant: Variant?,
        parse: () async throws -> (body: ByteBuffer, inputs: [Tensor], parsed: Parsed),
        render: ([Tensor], Parsed) throws -> ResponseContent,
        shadowInputs: (@Sendable (any InferenceModel) throws -> [Tensor])?
    ) async throws -> Response {
        var logger = context.logger
        let chosen = variant.flatMap { $0.chosen ? $0 : nil }
        if let chosen { logger[metadataKey: "variant"] = "\(chosen.model)" }
        let (body, inputs, parsed) = try await runner.rejecting(model, logger: logger, parse)
        let validated = try runner.validate(model, inputs: inputs, logger: logger)
        let name = model.metadata.name
        var outputs: [Tensor] = []
        // Set only when the model ran here: a replayed answer (same Idempotency-Key) is no evidence.
        var modelSeconds: Double?
        var modelFailed = false
        var response: Response
        do {
            response = try await charge(
                .price(billing.configuration.price(of: name)), model: name, request: request, body: body, context: context
            ) {
                let start = DispatchTime.now().uptimeNanoseconds
                do {
                    outputs = try await runner.predict(validated)
                } catch {
                    modelFailed = true
                    throw error
                }
                modelSeconds = Double(DispatchTime.now().uptimeNanoseconds &- start) / 1e9
                return try render(outputs, parsed)
            }
            .response()
        } catch {
            if modelFailed, let chosen { chosen.control?.recordCanary(model: chosen.model, success: false, latency: 0) }
            throw error
        }
        if let chosen, let modelSeconds {
            chosen.control?.recordCanary(model: chosen.model, success: true, latency: modelSeconds)
            if let shadowName = chosen.shadow, let shadowInputs, let shadow {
                if let shadowModel = try? runner.registry.model(named: shadowName) {
                    shadow.submit(
                        ShadowTraffic.Copy(
                            endpoint: chosen.endpoint, primary: name, shadow: shadowModel, primaryOutputs: outputs, inputs: shadowInputs,
                            logger: logger))
                } else {
                    shadow.metrics.shadow(endpoint: chosen.endpoint, shadow: shadowName, outcome: .failed)
                }
            }
        }
        if let variant {
            response.headers[.xModelVariant] = variant.model
            if let cookie = variant.setCookie { response.headers[.setCookie] = cookie }
        }
        return response
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
        try await RequestTracing.span("rate_limit") {
            try await modelLimits.check(model: model, context: context)
            try await limits()
        }
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
        try await RequestTracing.span("rate_limit") {
            try await modelLimits.check(model: model, context: context)
            try await limits()
        }
        return try await billing.hold(amount, model: model, request: request, body: body, context: context)
    }
}
