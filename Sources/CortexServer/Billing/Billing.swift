public import CortexCore
public import CortexStore
import Foundation
public import Hummingbird
import Logging

/// Charges a request on the ledger around the work that earns the charge.
///
/// The order is the design's: the caller has already validated the input; then the price is
/// held (402 if the balance cannot cover it, and nothing runs), the work runs, and the hold is
/// settled, durably, before the 200 leaves; if the work fails the hold is released and nothing is
/// charged. A request with an `Idempotency-Key` that was answered before gets the stored answer
/// again, uncharged.
///
/// Requests to a model without a price, and anonymous requests (`REQUIRE_API_KEY=false` and no
/// key), are not billed.
public struct Billing: Sendable {
    /// Longest `Idempotency-Key` accepted.
    public static var maximumIdempotencyKeyLength: Int { 255 }

    let ledger: any Ledger
    let configuration: CortexConfiguration.Billing
    let metrics: ServerMetrics

    /// Creates the gate.
    public init(ledger: any Ledger, configuration: CortexConfiguration.Billing, metrics: ServerMetrics) {
        self.ledger = ledger
        self.configuration = configuration
        self.metrics = metrics
    }

    /// What a request may cost and what it did cost: the amount held before the work runs (the
    /// most it can be charged), and from the work's output the cost to settle (capped at the hold)
    /// with the answer to send. A model's price is both; an LLM call holds its prompt bound plus
    /// `max_tokens` and settles the usage its provider reports.
    public struct Cost<Output>: Sendable {
        /// Held before the work runs.
        public var held: Credits
        /// From the output, and the amount held (`nil` when the request is not billed): the cost
        /// and the answer, which may show the charge (an LLM's `usage.cost`).
        public var settled: @Sendable (Output, _ held: Credits?) -> (cost: Credits, content: ResponseContent)

        /// A cost known only from the work's output.
        public init(held: Credits, settled: @escaping @Sendable (Output, _ held: Credits?) -> (cost: Credits, content: ResponseContent)) {
            self.held = held
            self.settled = settled
        }
    }

    /// Holds `cost.held` for one request to `model`, runs `work`, then settles what the output
    /// cost or, when the work fails, releases the hold.
    ///
    /// - Parameters:
    ///   - model: The model (or LLM deployment) billed, for the ledger and the metrics.
    ///   - request: The request, for its `Idempotency-Key`, method and path.
    ///   - body: The request body as received, fingerprinted with an `Idempotency-Key`.
    ///   - work: Produces the output the cost is computed from.
    /// - Returns: What happened: the answer, with the charge and the balance after it when billed,
    ///   or the stored answer of an earlier request with the same key. The HTTP layer renders it.
    /// - Throws: ``APIError``: 402 without credits, 409 for a repeated request id or a key still in
    ///   use, 422 for a key reused with another request, 503 if the ledger cannot be written; or
    ///   whatever `work` throws, after the hold was released.
    public func charge<Context: AuthenticatedContext, Output>(
        _ cost: Cost<Output>,
        model: String,
        request: Request,
        body: ByteBuffer,
        context: Context,
        work: () async throws -> Output
    ) async throws -> Charged {
        let held: HeldCharge
        switch try await hold(cost.held, model: model, request: request, body: body, context: context) {
        case .notBilled: return .answered(cost.settled(try await work(), nil).content, receipt: nil)
        case .replay(let stored): return .replay(stored)
        case .held(let charge): held = charge
        }
        let output: Output
        do {
            output = try await work()
        } catch {
            await release(held)
            throw error
        }
        let (amount, content) = cost.settled(output, held.amount)
        let charged = min(amount, held.amount)
        let balance = try await settle(held, cost: charged, storing: content)
        return .answered(content, receipt: Receipt(charged: charged, balance: balance))
    }

    /// One request to `model` at its configured price (``Cost/price(_:)``): the answer is the work's.
    public func charge<Context: AuthenticatedContext>(
        model: String,
        request: Request,
        body: ByteBuffer,
        context: Context,
        work: () async throws -> ResponseContent
    ) async throws -> Charged {
        try await charge(.price(configuration.price(of: model)), model: model, request: request, body: body, context: context, work: work)
    }

    /// What a billed request cost: the charge, and the tenant's balance after it.
    public struct Receipt: Sendable, Hashable {
        public var charged: Credits
        public var balance: Credits
    }

    /// What ``charge(model:request:body:context:work:)`` did.
    public enum Charged: Sendable {
        /// The work's answer; `receipt` is `nil` when the request was not billed.
        case answered(ResponseContent, receipt: Receipt?)
        /// The stored answer of an earlier request with the same `Idempotency-Key`, uncharged.
        case replay(StoredResponse)
    }

    /// What ``hold(_:model:request:body:context:)`` did.
    public enum HoldResult: Sendable {
        /// Nothing to bill: no price, or an anonymous request.
        case notBilled
        /// The stored answer of an earlier request with the same `Idempotency-Key`, uncharged.
        case replay(StoredResponse)
        /// Credits are held: settle or release them.
        case held(HeldCharge)
    }

    /// Credits held for one request, until it is settled or released.
    public struct HeldCharge: Sendable {
        let tenantID: Int64
        let requestID: String
        let model: String
        /// The amount held: the most the request can be charged.
        public let amount: Credits
        /// The balance right after the hold.
        let remaining: Credits
        let idempotency: Idempotency?
        let logger: Logger
    }

    /// Holds `amount` for the request: the first step of billing when the cost is known only
    /// after the work (an LLM's tokens), or is the model's price (``charge(model:request:body:context:work:)``).
    ///
    /// - Throws: ``APIError``: 402 without credits, 409 for a repeated request id or a key still in
    ///   use, 422 for a key reused with another request, 503 if the ledger cannot be written.
    public func hold<Context: AuthenticatedContext>(
        _ amount: Credits,
        model: String,
        request: Request,
        body: ByteBuffer,
        context: Context
    ) async throws -> HoldResult {
        guard amount > .zero, let principal = context.principal else { return .notBilled }
        let logger = context.logger
        let tenantID = principal.tenant.id
        let requestID = context.requestID
        let idempotency = try Self.idempotency(of: request, body: body)
        let hold = Hold(
            tenantID: tenantID,
            requestID: requestID,
            amount: amount,
            model: model,
            keyID: principal.key.id,
            expiresAt: Date().addingTimeInterval(configuration.holdTTLSeconds),
            idempotency: idempotency,
            // A client's own X-Request-ID must be claimed before the work; Cortex's cannot repeat.
            requestIDIsUnique: request.headers[.xRequestID] == nil
        )
        do {
            let held = try await RequestTracing.span("hold", attributes: { $0["cortex.credits_held"] = "\(amount)" }) {
                try await ledger.hold(hold)
            }
            switch held {
            case .held(let remaining):
                return .held(
                    HeldCharge(
                        tenantID: tenantID, requestID: requestID, model: model, amount: amount, remaining: remaining,
                        idempotency: idempotency, logger: logger))
            case .insufficient(let available):
                metrics.model(model).record(.creditsExhausted)
                logger.warning(
                    "BILLING_FAIL",
                    metadata: ["model": "\(model)", "reason": "insufficient credits", "balance": "\(available)", "price": "\(amount)"]
                )
                throw APIError.creditsExhausted(balance: available, price: amount)
            case .duplicateRequest:
                throw APIError(
                    status: 409,
                    code: "duplicate_request",
                    message:
                        "request id '\(requestID)' was billed already; send a new X-Request-ID, or an Idempotency-Key to get the first answer back"
                )
            case .idempotentReplay(let stored?, true):
                return .replay(stored)
            case .idempotentReplay(nil, true):
                throw APIError(
                    status: 409,
                    code: "idempotency_key_in_use",
                    message: "a request with this Idempotency-Key is still running; retry when it has finished",
                    fields: [("retry_after_s", .double(1))]
                )
            case .idempotentReplay(_, false):
                throw APIError(
                    status: 422,
                    code: "idempotency_key_reused",
                    message: "this Idempotency-Key was used for a different request (method, path or body differ)"
                )
            case .unknownTenant:
                throw APIError.unauthorized
            }
        } catch let error as APIError {
            throw error
        } catch {
            logger.error("BILLING_FAIL", metadata: ["model": "\(model)", "reason": "ledger unavailable", "error": "\(error)"])
            throw APIError.billingUnavailable
        }
    }

    /// Returns a hold: the work failed, nothing is charged.
    public func release(_ held: HeldCharge) async {
        do {
            _ = try await RequestTracing.span("release") { try await ledger.release(tenantID: held.tenantID, requestID: held.requestID) }
        } catch {
            // The hold expires and is released by the sweeper: still no charge.
            held.logger.error(
                "BILLING_FAIL",
                metadata: ["model": "\(held.model)", "reason": "release failed; the hold will expire", "error": "\(error)"]
            )
        }
    }

    /// Charges `cost` (at most the amount held; the rest goes back), durably, and keeps `content`
    /// for an `Idempotency-Key` retry.
    ///
    /// - Returns: The balance after the charge.
    /// - Throws: ``APIError/billingUnavailable`` when the ledger cannot be written or the hold
    ///   expired (`HOLD_TTL_S`) before the work finished: then nothing is charged.
    @discardableResult
    public func settle(_ held: HeldCharge, cost: Credits, storing content: ResponseContent?) async throws(APIError) -> Credits {
        let cost = min(cost, held.amount)
        let settled: Bool
        do {
            settled = try await RequestTracing.span("settle", attributes: { $0["cortex.credits_charged"] = "\(cost)" }) {
                try await ledger.settle(
                    tenantID: held.tenantID,
                    requestID: held.requestID,
                    cost: cost,
                    idempotentResponse: held.idempotency.flatMap { _ in content.map { StoredResponse(status: 200, body: $0.stored) } }
                )
            }
        } catch {
            held.logger.error("BILLING_FAIL", metadata: ["model": "\(held.model)", "reason": "settlement failed", "error": "\(error)"])
            throw APIError.billingUnavailable
        }
        guard settled else {
            held.logger.error("BILLING_FAIL", metadata: ["model": "\(held.model)", "reason": "hold expired before settlement"])
            throw APIError.billingUnavailable
        }
        metrics.model(held.model).creditsSpent.increment(by: Double(cost.microcredits) / Double(Credits.scale))
        return held.remaining.adding(held.amount.subtracting(cost) ?? .zero) ?? held.remaining
    }

    /// The request's `Idempotency-Key` with its fingerprint, or `nil` without one.
    static func idempotency(of request: Request, body: ByteBuffer) throws(APIError) -> Idempotency? {
        guard let key = request.headers[.idempotencyKey] else { return nil }
        guard !key.isEmpty, key.utf8.count <= maximumIdempotencyKeyLength, key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw APIError(
                status: 400,
                code: "invalid_idempotency_key",
                message: "Idempotency-Key must be 1-\(maximumIdempotencyKeyLength) printable ASCII characters without spaces"
            )
        }
        let fingerprint = body.withUnsafeReadableBytes { bytes in
            Idempotency.fingerprint(method: request.method.rawValue, path: request.uri.path, body: bytes)
        }
        return Idempotency(key: key, fingerprint: fingerprint)
    }
}

extension Billing.Cost where Output == ResponseContent {
    /// A fixed price, held and charged whole; the answer is the work's.
    public static func price(_ price: Credits) -> Self {
        Self(held: price) { content, _ in (price, content) }
    }
}

extension APIError {
    /// 402: the balance cannot cover the price; both are in the body.
    public static func creditsExhausted(balance: Credits, price: Credits) -> APIError {
        APIError(
            status: 402,
            code: "credits_exhausted",
            message: "insufficient credits: the balance is \(balance) and this request costs \(price)",
            fields: [("balance", .decimal(balance.description)), ("price", .decimal(price.description))]
        )
    }

    /// 503: the ledger cannot be written, so nothing is charged and nothing is answered.
    public static var billingUnavailable: APIError {
        APIError(
            status: 503,
            code: "billing_unavailable",
            message: "the credits ledger could not record this request; nothing was charged, retry shortly",
            fields: [("retry_after_s", .double(1))]
        )
    }
}
