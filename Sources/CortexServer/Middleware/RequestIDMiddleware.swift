public import CortexCore
public import Hummingbird
import Logging

/// Takes a sane `X-Request-ID` or makes one, puts it in the logger's metadata,
/// and returns it as `Trace-Id` and `X-Request-ID`.
///
/// Requests to quiet routes (probes, `/metrics`) log nothing below debug level, so at higher
/// levels they skip attaching the id to the logger: copying a logger costs allocations, and
/// load balancers probe often. Errors still carry the id (``ErrorResponseMiddleware`` logs it).
public struct RequestIDMiddleware<Context: RequestIDContext>: RouterMiddleware {
    let generator: RequestIDGenerator
    let quietPaths: Set<String>

    /// Creates the middleware.
    ///
    /// - Parameters:
    ///   - generator: Makes ids for requests that bring none.
    ///   - quietPaths: Paths whose requests log only at debug level.
    public init(generator: RequestIDGenerator = RequestIDGenerator(), quietPaths: Set<String> = []) {
        self.generator = generator
        self.quietPaths = quietPaths
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let id = request.headers[.xRequestID].flatMap { RequestID.sanitized($0[...]) } ?? generator.next()
        context.requestID = id
        if context.logger.logLevel <= .debug || !quietPaths.contains(request.uri.path) {
            context.logger[metadataKey: "request_id"] = .string(id)
        }
        var response = try await next(request, context)
        response.headers[.traceID] = id
        response.headers[.xRequestID] = id
        return response
    }
}
