public import CortexCore
public import CortexRuntime
public import CortexStore
import Foundation
public import Hummingbird

/// What a key holder can do about their own account.
///
/// - `GET /me`: the tenant, key prefix, scopes and expiry of the presented key, the tenant's
///   balance and open holds, usage per model, and the limits that apply.
/// - `POST /keys/rotate`: a new key with the same scopes and expiry; the presented key stops
///   working at once, or after `{"grace_s": N}` seconds (at most 30 days).
/// - `GET /ops/model-status` (the multi-tenant ops API's "verify the new key works"): the caller's
///   tenant, key and limits, and every model with its version and readiness.
public struct AccountController<Context: AuthenticatedContext>: Sendable {
    let store: StateStore
    let registry: ModelRegistry
    let authenticator: Authenticator
    let billing: CortexConfiguration.Billing
    let rateLimit: GCRA?
    let maxBodyBytes: Int

    /// Creates the controller.
    public init(
        store: StateStore,
        registry: ModelRegistry,
        authenticator: Authenticator,
        billing: CortexConfiguration.Billing,
        rateLimit: GCRA?,
        maxBodyBytes: Int
    ) {
        self.store = store
        self.registry = registry
        self.authenticator = authenticator
        self.billing = billing
        self.rateLimit = rateLimit
        self.maxBodyBytes = maxBodyBytes
    }

    /// Adds the routes to a group that authenticates.
    public func addRoutes(to router: some RouterMethods<Context>) {
        router.get("/me") { _, context in try await self.me(context) }
        router.post("/keys/rotate") { request, context in try await self.rotate(request, context) }
        router.get("/ops/model-status") { _, context in try self.modelStatus(context) }
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
        writeLimits(to: &json)
        json.member("request_id", context.requestID)
        json.endObject()
        return Response.json(.ok, json.text)
    }

    /// `{"tenant", "key_prefix", "scopes", ..., "limits": {...}, "ready", "models": [{"name",
    /// "version", "state", "ready"}], "request_id"}`: 200 whether or not every model is ready
    /// (`ready` says), since the question is whether the key works.
    func modelStatus(_ context: Context) throws -> Response {
        guard let principal = context.principal else { throw APIError.unauthorized }
        let entries = registry.entries
        var json = JSONWriter(capacity: 256 + entries.count * 96)
        json.beginObject()
        json.member("tenant", principal.tenant.name)
        json.keyFields(principal.key, active: true)
        writeLimits(to: &json)
        json.member("ready", entries.allSatisfy { if case .ready = $0.state { true } else { false } })
        json.key("models")
        json.beginArray()
        for entry in entries {
            json.beginObject()
            json.member("name", entry.source.name)
            json.key("version")
            if let version = entry.version { json.string(version) } else { json.null() }
            json.member("state", entry.state.name)
            json.member("ready", entry.state.name == "ready")
            json.endObject()
        }
        json.endArray()
        json.member("request_id", context.requestID)
        json.endObject()
        return Response.json(.ok, json.text)
    }

    /// `"limits": {"max_body_bytes", "rate_limit": {"rps", "burst"} or null, "prices", "default_price"}`.
    private func writeLimits(to json: inout JSONWriter) {
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
