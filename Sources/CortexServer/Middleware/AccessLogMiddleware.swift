import Dispatch
public import Hummingbird
import Logging

/// Logs `REQ_START` and `REQ_END` (status, duration) and records `http_requests_total` and
/// `http_request_duration_seconds` by route template.
///
/// Probe and scrape routes log at debug level so that a load balancer polling `/health`
/// does not drown the requests an operator is looking for.
public struct AccessLogMiddleware<Context: RequestIDContext>: RouterMiddleware {
    let metrics: ServerMetrics
    let quietRoutes: Set<String>

    /// Creates the middleware.
    ///
    /// - Parameters:
    ///   - metrics: Where request counts and durations go.
    ///   - quietRoutes: Route templates logged at debug level.
    public init(metrics: ServerMetrics, quietRoutes: Set<String>) {
        self.metrics = metrics
        self.quietRoutes = quietRoutes
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let path = request.uri.path
        let quiet = quietRoutes.contains(path)
        let level: Logger.Level = quiet ? .debug : .info
        context.logger.log(level: level, "REQ_START", metadata: ["method": "\(request.method)", "path": "\(path)"])
        let response = try await next(request, context)
        let elapsed = DispatchTime.now().uptimeNanoseconds &- start
        let route = context.endpointPath ?? "unmatched"
        var metadata: Logger.Metadata = [
            "method": "\(request.method)",
            "path": "\(path)",
            "route": "\(route)",
            "status": .stringConvertible(response.status.code),
            "duration_ms": .stringConvertible(Double(elapsed / 1000) / 1000),
        ]
        if let variant = response.headers[.xModelVariant] { metadata["variant"] = "\(variant)" }
        context.logger.log(level: level, "REQ_END", metadata: metadata)
        metrics.recordRequest(route: route, method: request.method.rawValue, status: response.status.code, nanoseconds: elapsed)
        return response
    }
}
