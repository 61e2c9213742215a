public import CortexCore
public import Hummingbird

/// A request context that carries the authenticated caller.
public protocol AuthenticatedContext: RequestIDContext {
    /// The caller, once ``APIKeyMiddleware`` has authenticated it; `nil` for anonymous requests.
    var principal: Principal? { get set }
}

/// Authenticates `X-API-Key` or `Authorization: Bearer` and requires a scope.
///
/// A missing, unknown, revoked or expired key is a 401 with the same message every time, so the
/// answer never tells whether a key exists; a valid key without the scope is a 403. With
/// `REQUIRE_API_KEY=false`, requests without a key pass anonymously, but a key that is presented
/// must still be valid.
public struct APIKeyMiddleware<Context: AuthenticatedContext>: RouterMiddleware {
    let authenticator: Authenticator
    let scope: Scope

    /// Creates the middleware for routes that need `scope`.
    public init(authenticator: Authenticator, scope: Scope) {
        self.authenticator = authenticator
        self.scope = scope
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let key = Self.presentedKey(in: request) else {
            if authenticator.configuration.requireAPIKey { throw APIError.unauthorized }
            return try await next(request, context)
        }
        let found = try await RequestTracing.span("auth") { try await authenticator.principal(forKey: key) }
        guard let principal = found else {
            throw APIError.unauthorized
        }
        guard principal.key.scopes.contains(scope) else {
            throw APIError(status: 403, code: "forbidden", message: "this API key lacks the '\(scope.rawValue)' scope")
        }
        var context = context
        context.principal = principal
        context.logger[metadataKey: "tenant"] = .string(principal.tenant.name)
        return try await next(request, context)
    }

    /// The key from `X-API-Key`, or from `Authorization: Bearer <key>`.
    static func presentedKey(in request: Request) -> String? {
        if let key = request.headers[.xAPIKey], !key.isEmpty {
            return key
        }
        if let authorization = request.headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                return String(parts[1]).trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }
}

extension APIError {
    /// 401: no usable API key; deliberately the same for missing, unknown, revoked and expired keys.
    public static var unauthorized: APIError {
        APIError(
            status: 401,
            code: "unauthorized",
            message: "missing or invalid API key; send it as X-API-Key or Authorization: Bearer"
        )
    }
}
