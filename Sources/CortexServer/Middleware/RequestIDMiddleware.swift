public import CortexCore
public import Hummingbird

/// Takes a sane `X-Request-ID` or makes one, puts it in the logger's metadata,
/// and returns it as `Trace-Id` and `X-Request-ID`.
public struct RequestIDMiddleware<Context: RequestIDContext>: RouterMiddleware {
    let generator: RequestIDGenerator

    /// Creates the middleware.
    public init(generator: RequestIDGenerator = RequestIDGenerator()) {
        self.generator = generator
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let id = request.headers[.xRequestID].flatMap { RequestID.sanitized($0[...]) } ?? generator.next()
        context.requestID = id
        context.logger[metadataKey: "request_id"] = .string(id)
        var response = try await next(request, context)
        response.headers[.traceID] = id
        response.headers[.xRequestID] = id
        return response
    }
}
