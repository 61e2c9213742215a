public import CortexCore
public import CortexStore
import Foundation
public import Hummingbird

/// What a key holder can do about their own account.
///
/// - `GET /me`: the tenant, key prefix, scopes and expiry of the presented key, the tenant's
///   balance and open holds, usage per model, and the limits that apply.
/// - `POST /keys/rotate`: a new key with the same scopes and expiry; the presented key stops
///   working at once, or after `{"grace_s": N}` seconds (at most 30 days).
public struct AccountController<Context: AuthenticatedContext>: Sendable {
    let store: StateStore
    let authenticator: Authenticator
    let billing: CortexConfiguration.Billing
    let rateLimit: GCRA?
    let maxBodyBytes: Int

    /// Creates the controller.
    public init(
        store: StateStore,
        authenticator: Authenticator,
        billing: CortexConfiguration.Billing,
        rateLimit: GCRA?,
        maxBodyBytes: Int
    ) {
        self.store = store
        self.authenticator = authenticator
        self.billing = billing
        self.rateLimit = rateLimit
        self.maxBodyBytes = maxBodyBytes
    }

    /// Adds the routes to a group that authenticates.
    public func addRoutes(to router: some RouterMethods<Context>) {
        router.get("/me") { _, context in try await self.me(context) }
        router.post("/keys/rotate") { request, context in try await self.rotate(request, context) }
    }

    func me(_ context: Context) async throws -> Response {
        // No principal only with REQUIRE_API_KEY=false and no key: there is no one to describe.
        guard let principal = context.principal else { throw APIError.unauthorized }
        let balance = try await store.ledger.balance(tenantID: principal.tenant.id)
        let usage = try await store.ledger.usage(tenantID: principal.tenant.id)
        var json = JSONWriter(capacity: 512)
        json.beginObject()
        json.member("tenant", principal.tenant.name)
        json.keyFields(principal.key, active: true)
        json.creditFields(balance: balance, usage: usage)
        json.key("limits")
        json.beginObject()
        json.member("max_body_bytes", maxBodyBytes)
        json.key("rate_limit")
        if let rateLimit {
            json.beginObject()
            json.key("rps")
            json.number(1e9 / Double(rateLimit.emissionInterval))
            json.member("burst", rateLimit.burst)
            json.endObject()
        } else {
            json.null()
        }
        json.key("prices")
        json.beginObject()
        for (model, price) in billing.prices.sorted(by: { $0.key < $1.key }) {
            json.key(model)
            json.raw(price.description)
        }
        json.endObject()
        json.key("default_price")
        json.raw(billing.defaultPrice.description)
        json.endObject()
        json.member("request_id", context.requestID)
        json.endObject()
        return Response.json(.ok, json.text)
    }

    func rotate(_ request: Request, _ context: Context) async throws -> Response {
        guard let principal = context.principal else { throw APIError.unauthorized }
        guard principal.key.source == .generated else {
            throw APIError(
                status: 409,
                code: "managed_key",
                message: "this key comes from API_KEYS or the demo tenant; change API_KEYS (or DEMO_TENANT) to replace it"
            )
        }
        let grace = try await request.graceSeconds(limit: maxBodyBytes)
        let issued = try await store.issueKey(
            tenantID: principal.tenant.id,
            scopes: principal.key.scopes,
            expiresAt: principal.key.expiresAt
        )
        let revokedAt = Date().addingTimeInterval(grace)
        _ = try await store.revokeKey(id: principal.key.id, at: revokedAt)
        authenticator.invalidate()
        context.logger.notice(
            "KEY_ROTATED",
            metadata: [
                "old_key_prefix": "\(principal.key.displayPrefix)",
                "new_key_prefix": "\(issued.record.displayPrefix)",
                "grace_s": .stringConvertible(grace),
            ]
        )
        var json = JSONWriter(capacity: 256)
        json.beginObject()
        json.member("key", issued.key)
        json.keyFields(issued.record, active: true)
        json.member("old_key_prefix", principal.key.displayPrefix)
        json.member("old_key_revoked_at", revokedAt.ISO8601Format())
        json.endObject()
        return Response.json(.ok, json.text)
    }
}
