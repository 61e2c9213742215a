import CortexCore
import CortexRuntime
import CortexStore
import Foundation
public import Hummingbird
import Logging

/// The admin API: tenants, keys, and reloading seeded keys. Mounted behind ``AdminAuthMiddleware``.
///
/// - `GET /admin/tenants` (also the multi-tenant ops API's `GET /ops/tenants`), `POST /admin/tenants` `{"name"}`
/// - `GET /admin/tenants/{tenant}/keys`, `POST /admin/tenants/{tenant}/keys` `{"scopes", "expires_in_s"}`
/// - `POST /admin/keys/{id}/revoke` `{"grace_s"}`
/// - `GET /admin/tenants/{tenant}/credits?limit=&before=`: balance, holds, usage and entries, newest first
/// - `POST /admin/tenants/{tenant}/credits` `{"amount": "12.5", "note"}`: a grant (negative to remove)
/// - `POST /admin/reload-auth` (also `POST /ops/reload-auth`): re-read the configuration and re-seed keys
/// - `GET /admin/config`: the A/B split of `POST /v1/infer` and its variants; `POST /admin/config`
///   `{"ab_weight_a": 0.9, "ab_weight_b": 0.1}`: change it without a restart (every replica);
///   `POST /admin/warmup`, `POST /admin/promote`. Each takes `?endpoint=NAME` for a named endpoint
///   of `traffic.endpoints`.
public struct AdminController<Context: AuthenticatedContext>: Sendable {
    let dependencies: ServerDependencies

    /// Creates the controller.
    public init(dependencies: ServerDependencies) {
        self.dependencies = dependencies
    }

    /// Adds the admin routes to a guarded group.
    public func addRoutes(to router: some RouterMethods<Context>) {
        router.get("/admin/tenants") { _, _ in try await self.listTenants() }
        router.get("/ops/tenants") { _, _ in try await self.listTenants() }
        router.post("/admin/tenants") { request, _ in try await self.createTenant(request) }
        router.get("/admin/tenants/{tenant}/keys") { _, context in try await self.listKeys(context) }
        router.post("/admin/tenants/{tenant}/keys") { request, context in try await self.issueKey(request, context) }
        router.get("/admin/tenants/{tenant}/credits") { request, context in try await self.credits(request, context) }
        router.post("/admin/tenants/{tenant}/credits") { request, context in try await self.grant(request, context) }
        router.post("/admin/keys/{id}/revoke") { request, context in try await self.revokeKey(request, context) }
        router.post("/admin/reload-auth") { _, context in try await self.reloadAuth(context) }
        router.post("/ops/reload-auth") { _, context in try await self.reloadAuth(context) }
        router.get("/admin/config") { request, _ in self.trafficConfiguration(try self.sync(request).control) }
        router.post("/admin/config") { request, context in try await self.changeTraffic(request, context) }
        router.post("/admin/warmup") { request, context in try await self.warmUp(request, context) }
        router.post("/admin/promote") { request, context in try await self.promote(request, context) }
    }

    /// The endpoint a traffic route acts on: `?endpoint=NAME` (a name of `traffic.endpoints`), else `/v1/infer`.
    ///
    /// - Throws: 404 `endpoint_not_found` for a name with no traffic switches.
    func sync(_ request: Request) throws(APIError) -> TrafficSync {
        let name = request.uri.queryParameters.get("endpoint") ?? dependencies.traffic.endpoint
        guard let sync = dependencies.trafficSyncs.first(where: { $0.control.endpoint == name }) else {
            let names = dependencies.trafficControls.map(\.endpoint).joined(separator: ", ")
            throw APIError(
                status: 404, code: "endpoint_not_found", message: "no traffic split is configured for '\(name)'; there is one for \(names)",
                fields: [("endpoint", .string(name))])
        }
        return sync
    }

    /// `{"endpoint", "ab_weight_a", "ab_weight_b", "shadow_enabled", "canary_enabled", "canary_step",
    /// "promotions", "sticky_cookie", "split", "version", "canary": {...}, "shadow_queue_depth",
    /// "variants": [{"name", "weight", "version", "state"}], "endpoints": [...]}`.
    func trafficConfiguration(_ traffic: TrafficControl) -> Response {
        let settings = traffic.settings
        var json = JSONWriter(capacity: 384)
        json.beginObject()
        json.member("endpoint", traffic.endpoint)
        TrafficControl.write(settings, to: &json)
        json.key("sticky_cookie")
        if let cookie = settings.stickyCookie { json.string(cookie) } else { json.null() }
        let split = settings.split
        json.member("split", split != nil)
        json.member("version", Int(traffic.version))
        json.key("canary")
        TrafficControl.writeCanary(settings, analysis: traffic.canary, to: &json)
        json.member("shadow_queue_depth", settings.shadowQueueDepth)
        json.key("variants")
        json.beginArray()
        // The weights in force: the canary's shares while it runs.
        let weights =
            split.map { split in split.variants.map { ($0.model, $0.weight) } }
            ?? [(settings.variantA, settings.weightA), (settings.variantB, settings.weightB)]
        for (name, weight) in weights {
            let entry = dependencies.registry.entry(named: name)
            json.beginObject()
            json.member("name", name)
            json.key("weight")
            json.number(weight)
            json.key("version")
            if let version = entry?.version { json.string(version) } else { json.null() }
            json.member("state", entry?.state.name ?? "not configured")
            json.endObject()
        }
        json.endArray()
        json.key("endpoints")
        json.beginArray()
        for control in dependencies.trafficControls { json.string(control.endpoint) }
        json.endArray()
        json.endObject()
        return Response.json(.ok, json.text)
    }

    /// Most warm-up runs one `POST /admin/warmup` may ask for, per variant.
    static var maximumWarmupRuns: Int { 1000 }

    /// `POST /admin/warmup` (optional `{"runs": 3}`): runs each loaded variant of the endpoint
    /// (vA, vB) that many times on zeros and answers with the timings; a variant that is not
    /// ready is reported, not run.
    func warmUp(_ request: Request, _ context: Context) async throws -> Response {
        let traffic = try sync(request).control
        let buffer = try await request.collectBody(limit: limit)
        var runs = 3
        if buffer.readableBytes > 0 {
            let body = try JSONValue.parse(buffer)
            guard case .object(let members) = body else { throw APIError.invalidConfig("", "a JSON object") }
            for (name, value) in members {
                guard name == "runs" else { throw APIError.invalidConfig(name, "runs, the only field") }
                guard case .number(let number) = value, let count = Int(exactly: number), (1...Self.maximumWarmupRuns).contains(count)
                else {
                    throw APIError.invalidConfig("runs", "an integer from 1 to \(Self.maximumWarmupRuns)")
                }
                runs = count
            }
        }
        var json = JSONWriter(capacity: 256)
        json.beginObject()
        json.member("endpoint", traffic.endpoint)
        json.key("variants")
        json.beginArray()
        let variants = traffic.variants
        for name in [variants.a, variants.b] {
            json.beginObject()
            json.member("name", name)
            do {
                let timings = try await dependencies.registry.warmUp(named: name, runs: runs)
                json.member("state", "ready")
                json.member("runs", timings.runs)
                json.key("first_ms")
                json.number(timings.firstMilliseconds)
                json.key("mean_ms")
                json.number(timings.meanMilliseconds)
                context.logger.notice(
                    "MODEL_WARMED",
                    metadata: [
                        "model": "\(name)", "runs": .stringConvertible(timings.runs),
                        "first_ms": .stringConvertible(timings.firstMilliseconds), "mean_ms": .stringConvertible(timings.meanMilliseconds),
                    ])
            } catch let error as APIError {
                json.member("state", dependencies.registry.entry(named: name)?.state.name ?? "not configured")
                json.member("error", error.message)
            }
            json.endObject()
        }
        json.endArray()
        json.endObject()
        return Response.json(.ok, json.text)
    }

    /// `POST /admin/promote`: vB becomes vA (``Promotion``), here at once, then on every other
    /// replica: the endpoint's stored `promotions` count goes one up, and each replica that sees it
    /// runs the promotion too. The weights stay as they are. Point `MODEL_VA_PATH` at the file for
    /// the next start.
    func promote(_ request: Request, _ context: Context) async throws -> Response {
        let sync = try sync(request)
        let traffic = sync.control
        let variants = traffic.variants
        let outcome = try await Promotion(primary: variants.a, candidate: variants.b).run(on: dependencies.registry, logger: context.logger)
        // Promoted here already: a promotion another replica stored meanwhile is not run again.
        let (record, _, after) = try await sync.change(actor: actor(context), promoting: false) { current in
            var next = current
            next.promotions += 1
            return next
        }
        var json = JSONWriter(capacity: 256)
        json.beginObject()
        json.member("endpoint", traffic.endpoint)
        json.member("promoted", variants.b)
        json.member("primary", variants.a)
        json.member("va_path", outcome.path)
        json.key("previous_va_path")
        if let previous = outcome.previousPath { json.string(previous) } else { json.null() }
        json.member("version", outcome.version)
        json.member("promotions", after.promotions)
        json.member("traffic_version", Int(record.version))
        json.endObject()
        return Response.json(.ok, json.text)
    }

    /// Who made a change, for the audit trail: the admin key's id, or the admin token.
    private func actor(_ context: Context) -> String {
        context.principal.map { "key \($0.key.id)" } ?? "admin token"
    }

    /// The A/B image service's body, checked whole (422 naming the field, nothing applied), then
    /// stored as the next version (every replica applies it within ``TrafficSync/interval``) and
    /// applied here at once.
    func changeTraffic(_ request: Request, _ context: Context) async throws -> Response {
        let sync = try sync(request)
        let traffic = sync.control
        let change = try TrafficControl.Change(json: try await request.parseJSON(limit: limit))
        let registry = dependencies.registry
        let actor = actor(context)
        let (record, before, after) = try await sync.change(actor: actor) { current in
            let after = try TrafficControl.applying(change, to: current)
            // Nothing may be sent to vB (requests, copies or a canary's share) while there is none.
            if registry.entry(named: after.variantB) == nil,
                let field = after.canaryEnabled
                    ? "canary_enabled" : after.shadowEnabled ? "shadow_enabled" : after.weightB > 0 ? "ab_weight_b" : nil
            {
                throw APIError.invalidConfig(field, "off (or 0) while no model named \(after.variantB) is configured (MODEL_VB_PATH)")
            }
            return after
        }
        context.logger.notice(
            "TRAFFIC_CONFIG_CHANGED",
            metadata: [
                "endpoint": "\(traffic.endpoint)", "version": "\(record.version)", "after": "\(TrafficControl.summary(after))",
                "before": "\(before.map(TrafficControl.summary) ?? "newer version applied meanwhile")", "by": "\(actor)",
            ])
        return trafficConfiguration(traffic)
    }

    private var store: StateStore { dependencies.store }
    private var limit: Int { dependencies.configuration.server.maxBodyBytes }

    func listTenants() async throws -> Response {
        let tenants = try await store.tenants()
        var json = JSONWriter(capacity: 64 + tenants.count * 64)
        json.beginObject()
        json.key("tenants")
        json.beginArray()
        for tenant in tenants {
            json.beginObject()
            json.member("id", Int(tenant.id))
            json.member("name", tenant.name)
            json.member("created_at", tenant.createdAt.ISO8601Format())
            json.endObject()
        }
        json.endArray()
        json.member("count", tenants.count)
        json.endObject()
        return Response.json(.ok, json.text)
    }

    func createTenant(_ request: Request) async throws -> Response {
        let body = try await request.parseJSON(limit: limit)
        let name = try body.required("name", in: "").string(at: "name")
        let tenant: Tenant
        do {
            tenant = try await store.createTenant(named: name)
        } catch let error as IdentityStoreError {
            throw Self.apiError(error)
        }
        dependencies.metrics.tenantCount.record(try await store.tenants().count)
        var json = JSONWriter()
        json.beginObject()
        json.member("id", Int(tenant.id))
        json.member("name", tenant.name)
        json.endObject()
        return Response.json(.created, json.text)
    }

    func listKeys(_ context: Context) async throws -> Response {
        let tenant = try await self.tenant(context)
        let keys = try await store.keys(tenantID: tenant.id)
        let now = Date()
        var json = JSONWriter(capacity: 64 + keys.count * 160)
        json.beginObject()
        json.key("keys")
        json.beginArray()
        for key in keys {
            json.beginObject()
            json.keyFields(key, active: key.isActive(at: now))
            json.endObject()
        }
        json.endArray()
        json.endObject()
        return Response.json(.ok, json.text)
    }

    func issueKey(_ request: Request, _ context: Context) async throws -> Response {
        let tenant = try await self.tenant(context)
        let body = try await request.parseJSON(limit: limit)
        _ = try body.object(at: "")
        var scopes: Set<Scope> = [.infer]
        if let list = body["scopes"] {
            scopes = []
            for (index, element) in try list.array(at: "scopes").enumerated() {
                let name = try element.string(at: "scopes[\(index)]")
                guard let scope = Scope(rawValue: name) else {
                    throw APIError.invalidInput("unknown scope '\(name)'; expected infer or admin")
                }
                scopes.insert(scope)
            }
        }
        var expiresAt: Date?
        if let value = body["expires_in_s"] {
            guard case .number(let seconds) = value, seconds > 0, seconds <= 10 * 365 * 86_400 else {
                throw APIError.invalidInput("'expires_in_s' must be a number of seconds from 1 to 315360000")
            }
            expiresAt = Date().addingTimeInterval(seconds)
        }
        let issued: IssuedAPIKey
        do {
            issued = try await store.issueKey(tenantID: tenant.id, scopes: scopes, expiresAt: expiresAt)
        } catch let error as IdentityStoreError {
            throw Self.apiError(error)
        }
        var json = JSONWriter(capacity: 256)
        json.beginObject()
        json.member("key", issued.key)
        json.keyFields(issued.record, active: true)
        json.endObject()
        return Response.json(.created, json.text)
    }

    func revokeKey(_ request: Request, _ context: Context) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self) else {
            throw APIError.invalidInput("key id must be an integer")
        }
        let grace = try await request.graceSeconds(limit: limit)
        let at = Date().addingTimeInterval(grace)
        guard try await store.revokeKey(id: id, at: at) else {
            throw APIError(status: 404, code: "key_not_found", message: "no key with id \(id)")
        }
        dependencies.authenticator.invalidate()
        context.logger.notice("KEY_REVOKED", metadata: ["key_id": .stringConvertible(id), "grace_s": .stringConvertible(grace)])
        var json = JSONWriter()
        json.beginObject()
        json.member("id", Int(id))
        json.member("revoked_at", at.ISO8601Format())
        json.endObject()
        return Response.json(.ok, json.text)
    }

    func credits(_ request: Request, _ context: Context) async throws -> Response {
        let tenant = try await self.tenant(context)
        let limit =
            try request.uri.queryParameters["limit"].map { text throws(APIError) in
                guard let value = Int(text), (1...1000).contains(value) else {
                    throw APIError.invalidInput("'limit' must be an integer from 1 to 1000")
                }
                return value
            } ?? 100
        let before = try request.uri.queryParameters["before"].map { text throws(APIError) in
            guard let value = Int64(text), value > 0 else { throw APIError.invalidInput("'before' must be a positive entry id") }
            return value
        }
        let ledger = store.ledger
        let balance = try await ledger.balance(tenantID: tenant.id)
        let usage = try await ledger.usage(tenantID: tenant.id)
        let entries = try await ledger.entries(tenantID: tenant.id, limit: limit, before: before)
        var json = JSONWriter(capacity: 256 + entries.count * 160)
        json.beginObject()
        json.member("tenant", tenant.name)
        json.creditFields(balance: balance, usage: usage)
        json.key("entries")
        json.beginArray()
        for entry in entries { json.entry(entry) }
        json.endArray()
        json.key("next_before")
        if entries.count == limit, let last = entries.last { json.raw(String(last.id)) } else { json.null() }
        json.endObject()
        return Response.json(.ok, json.text)
    }

    func grant(_ request: Request, _ context: Context) async throws -> Response {
        let tenant = try await self.tenant(context)
        let body = try await request.parseJSON(limit: limit)
        _ = try body.object(at: "")
        let amount = try Self.credits(body.required("amount", in: ""), at: "amount")
        guard amount != .zero else { throw APIError.invalidInput("'amount' must not be zero") }
        let note = try body["note"].map { value throws(APIError) in try value.string(at: "note") }
        if let note, note.count > 500 { throw APIError.invalidInput("'note' must be at most 500 characters") }
        let outcome = try await store.ledger.grant(
            Grant(tenantID: tenant.id, amount: amount, requestID: context.requestID, note: note)
        )
        switch outcome {
        case .granted(let balance):
            context.logger.notice(
                "CREDITS_GRANTED",
                metadata: ["tenant": "\(tenant.name)", "amount": "\(amount)", "balance": "\(balance)"]
            )
            var json = JSONWriter()
            json.beginObject()
            json.member("tenant", tenant.name)
            json.member("amount", amount)
            json.member("balance", balance)
            json.member("request_id", context.requestID)
            json.endObject()
            return Response.json(.ok, json.text)
        case .insufficient(let balance):
            throw APIError(
                status: 409,
                code: "insufficient_balance",
                message: "cannot remove \(Credits.zero.subtracting(amount) ?? amount) credits: the balance is \(balance)",
                fields: [("balance", .decimal(balance.description))]
            )
        case .overLimit(let balance):
            throw APIError(
                status: 422,
                code: "balance_limit",
                message:
                    "cannot add \(amount) credits: a balance, with what is held from it, can hold at most \(Credits.maximumBalance) credits; the balance is \(balance)",
                fields: [("balance", .decimal(balance.description)), ("limit", .decimal(Credits.maximumBalance.description))]
            )
        case .duplicateRequest:
            throw APIError(
                status: 409, code: "duplicate_request", message: "a grant with request id '\(context.requestID)' was made already")
        case .unknownTenant:
            throw APIError(status: 404, code: "tenant_not_found", message: "no tenant named '\(tenant.name)'")
        }
    }

    /// Credits from a JSON string (`"12.5"`, exact) or number (`12.5`), at most six decimal places.
    static func credits(_ value: JSONValue, at path: String) throws(APIError) -> Credits {
        let text: String
        switch value {
        case .string(let string): text = string
        case .number(let number): text = String(number)
        default: throw JSONValue.wrongType(path, expected: "a decimal string such as \"12.5\"", got: value)
        }
        guard let credits = Credits(decimal: text) else {
            throw APIError.invalidInput("'\(path)' must be a decimal with at most 6 places, such as \"12.5\"; got \(text)")
        }
        return credits
    }

    func reloadAuth(_ context: Context) async throws -> Response {
        let configuration: CortexConfiguration
        do {
            configuration = try dependencies.reloadConfiguration()
        } catch let error as ConfigurationError {
            throw APIError(status: 422, code: "invalid_configuration", message: error.description)
        }
        try await ServerDependencies.seedIdentities(configuration: configuration, store: store, logger: context.logger)
        dependencies.authenticator.invalidate()
        let tenants = try await store.tenants().count
        dependencies.metrics.tenantCount.record(tenants)
        context.logger.notice(
            "AUTH_RELOADED",
            metadata: [
                "api_keys": .stringConvertible(configuration.auth.apiKeys.count),
                "tenant_keys": .stringConvertible(configuration.auth.tenantKeys.count),
            ])
        var json = JSONWriter()
        json.beginObject()
        json.member("reloaded", true)
        json.member("tenants", tenants)
        json.member("api_keys", configuration.auth.apiKeys.count)
        json.member("tenant_keys", configuration.auth.tenantKeys.count)
        json.endObject()
        return Response.json(.ok, json.text)
    }

    private func tenant(_ context: Context) async throws -> Tenant {
        let name = try context.parameters.require("tenant")
        guard let tenant = try await store.tenant(named: name) else {
            throw APIError(status: 404, code: "tenant_not_found", message: "no tenant named '\(name)'")
        }
        return tenant
    }

    static func apiError(_ error: IdentityStoreError) -> APIError {
        switch error {
        case .duplicateTenant: APIError(status: 409, code: "tenant_exists", message: error.description)
        case .unknownTenant: APIError(status: 404, code: "tenant_not_found", message: error.description)
        default: APIError.invalidInput(error.description)
        }
    }
}
