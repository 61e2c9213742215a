import CortexCore
import Foundation
public import Hummingbird

/// `GET /me`: who the presented key belongs to and what it may do.
public struct MeController<Context: AuthenticatedContext>: Sendable {
    /// Creates the controller.
    public init() {}

    /// Adds `GET /me` to a group that authenticates.
    public func addRoutes(to router: some RouterMethods<Context>) {
        router.get("/me") { _, context in
            guard let principal = context.principal else {
                // Reached only with REQUIRE_API_KEY=false and no key: there is no one to describe.
                throw APIError.unauthorized
            }
            var json = JSONWriter(capacity: 256)
            json.beginObject()
            json.member("tenant", principal.tenant.name)
            json.member("key_prefix", principal.key.displayPrefix)
            json.key("scopes")
            json.beginArray()
            for scope in principal.key.scopes.sorted() { json.string(scope.rawValue) }
            json.endArray()
            json.key("expires_at")
            if let expires = principal.key.expiresAt {
                json.string(expires.ISO8601Format())
            } else {
                json.null()
            }
            json.member("request_id", context.requestID)
            json.endObject()
            return ProbeController<Context>.json(.ok, json.text)
        }
    }
}
