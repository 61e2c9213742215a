public import CortexCore
public import Hummingbird

/// Guards the admin API: `ADMIN_TOKEN` as `Authorization: Bearer` or `X-Admin-Key` (compared in
/// constant time), or an API key with the `admin` scope.
///
/// Wrong or missing credentials are a 401; an API key without the `admin` scope is a 403.
public struct AdminAuthMiddleware<Context: AuthenticatedContext>: RouterMiddleware {
    let adminToken: String?
    let authenticator: Authenticator

    /// Creates the middleware.
    public init(adminToken: String?, authenticator: Authenticator) {
        self.adminToken = adminToken
        self.authenticator = authenticator
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let presented = request.headers[.xAdminKey] ?? APIKeyMiddleware<Context>.presentedKey(in: request)
        guard let presented, !presented.isEmpty else { throw APIError.unauthorized }
        if let adminToken, ConstantTime.equals(presented, adminToken) {
            return try await next(request, context)
        }
        guard let principal = try await authenticator.principal(forKey: presented) else {
            throw APIError.unauthorized
        }
        guard principal.key.scopes.contains(.admin) else {
            throw APIError(status: 403, code: "forbidden", message: "this API key lacks the 'admin' scope")
        }
        var context = context
        context.principal = principal
        return try await next(request, context)
    }
}
