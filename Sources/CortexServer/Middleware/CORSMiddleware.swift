import CortexCore
public import Hummingbird

/// CORS on every route (`CORS_ORIGINS`, or the LLM assistant's `ALLOWED_ORIGINS`): browsers on
/// the origins listed may call Cortex.
///
/// A preflight (`OPTIONS`, any path) from an allowed origin gets 204 with the methods and headers
/// allowed, without a key; from any other origin, 403 naming the setting. Answers to allowed
/// origins, errors included, carry `Access-Control-Allow-Origin`, so a browser shows a 401 or 402
/// as what it is rather than as a CORS failure. A listed origin is echoed with
/// `Access-Control-Allow-Credentials: true` (so a browser keeps the `STICKY_COOKIE` session);
/// `*` answers `*` and never allows credentials, as the Fetch standard requires. A request from
/// an origin not listed is served without CORS headers: its browser does not let the page read it.
public struct CORSMiddleware<Context: RequestIDContext>: RouterMiddleware {
    let allowedOrigins: [String]
    /// Headers a browser's script may read from an answer.
    static var exposedHeaders: String {
        "X-Request-ID, X-Credits-Charged, X-Credits-Balance, X-LLM-Provider, X-Model-Variant, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
    }

    /// Allows `allowedOrigins` (`*` allows any).
    public init(allowedOrigins: [String]) {
        self.allowedOrigins = allowedOrigins
    }

    /// What `Access-Control-Allow-Origin` says to `origin`, or `nil` when it is not allowed.
    func allowOrigin(_ origin: String) -> String? {
        if allowedOrigins.contains("*") { return "*" }
        return allowedOrigins.contains(origin) ? origin : nil
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let allowed = request.headers[.origin].flatMap(allowOrigin)
        if request.method == .options {
            guard let allowed else {
                let origin = request.headers[.origin] ?? "(none)"
                return APIError(
                    status: 403, code: "origin_not_allowed",
                    message: "origin \(origin) is not in CORS_ORIGINS; add it there to let browsers on it call \(request.uri.path)"
                ).response(requestID: context.requestID)
            }
            var headers: HTTPFields = [
                .accessControlAllowOrigin: allowed,
                .accessControlAllowMethods: "GET, POST, OPTIONS",
                .accessControlAllowHeaders:
                    "Authorization, Content-Type, X-API-Key, X-Admin-Key, X-Request-ID, X-Session-ID, Idempotency-Key, Inference-Header-Content-Length",
                .accessControlMaxAge: "600",
            ]
            if allowed != "*" {
                headers[.vary] = "Origin"
                headers[.accessControlAllowCredentials] = "true"
            }
            return Response(status: .noContent, headers: headers)
        }
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = ErrorResponseMiddleware<Context>.response(for: error, request: request, context: context)
        }
        if let allowed {
            response.headers[.accessControlAllowOrigin] = allowed
            response.headers[.accessControlExposeHeaders] = Self.exposedHeaders
            if allowed != "*" {
                response.headers[.vary] = "Origin"
                response.headers[.accessControlAllowCredentials] = "true"
            }
        }
        return response
    }
}
