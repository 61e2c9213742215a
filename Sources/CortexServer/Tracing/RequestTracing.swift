public import CortexRuntime
public import HTTPTypes
public import Hummingbird
import Logging
public import Tracing

/// Spans for a request's steps (OpenTelemetry through swift-otel, when `OTEL_EXPORTER_OTLP_ENDPOINT`
/// is set): `request` (the server span, a child of the client's `traceparent`), then `auth`,
/// `rate_limit`, `hold`, `inference` (with the model and batch size) or `llm`, and `settle`.
///
/// The tracer travels in the request's `ServiceContext`, which ``TracingMiddleware`` sets: code
/// deep in the pipeline opens a child span with ``span(_:kind:propagates:attributes:_:)`` without
/// being handed the tracer, and with tracing off the context is absent and a step costs one
/// task-local read.
public enum RequestTracing {
    /// The key under which the request's context holds the tracer.
    enum TracerKey: ServiceContextKey {
        typealias Value = TracerBox
        static let nameOverride: String? = "cortex-tracer"
    }

    /// A tracer, as the context's value.
    struct TracerBox: Sendable {
        let tracer: any Tracer
    }

    /// Runs `body` in a child span of the current one when the request is traced; else just runs it.
    ///
    /// - Parameters:
    ///   - propagates: Whether calls made in the span (to an LLM provider, a remote model) send its
    ///     trace context, so the service called continues this trace.
    ///   - attributes: Set on the span before `body` runs.
    static func span<T, Failure: Error>(
        _ name: String, kind: SpanKind = .internal, propagates: Bool = false, attributes: (inout SpanAttributes) -> Void = { _ in },
        _ body: () async throws(Failure) -> T
    ) async throws(Failure) -> T {
        guard let context = ServiceContext.current, let tracer = context[TracerKey.self]?.tracer else { return try await body() }
        let span = tracer.startSpan(
            name, context: context, ofKind: kind, at: DefaultTracerClock.now, function: #function, file: #fileID, line: #line)
        span.updateAttributes(attributes)
        defer { span.end() }
        // As a Result, so the body's typed error comes out as it went in.
        func run() async -> Result<T, Failure> {
            do { return .success(try await body()) } catch { return .failure(error) }
        }
        let result = await ServiceContext.withValue(span.context) {
            guard propagates else { return await run() }
            var headers: [(String, String)] = []
            tracer.inject(span.context, into: &headers, using: HeaderListInjector())
            return await TracePropagation.$headers.withValue(headers) { await run() }
        }
        if case .failure(let error) = result {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
        }
        return try result.get()
    }

    /// Adds `attributes` to the current span, when there is one.
    static func annotate(_ attributes: (inout SpanAttributes) -> Void) {
        guard let context = ServiceContext.current, let tracer = context[TracerKey.self]?.tracer,
            let span = tracer.activeSpan(identifiedBy: context)
        else { return }
        span.updateAttributes(attributes)
    }

    struct HeaderListInjector: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [(String, String)]) {
            carrier.append((key, value))
        }
    }

    struct HTTPFieldsExtractor: Extractor {
        func extract(key: String, from carrier: HTTPFields) -> String? {
            HTTPField.Name(key).flatMap { carrier[$0] }
        }
    }
}

/// The `request` span of every request when tracing is on (a server span, child of the client's
/// `traceparent`, with the method, path and status); with tracing off, the client's `traceparent`
/// and `tracestate` are only passed on to the services a request calls.
///
/// Probes and `/metrics` (`quietPaths`) get no span: an orchestrator's polling is not traffic.
public struct TracingMiddleware<Context: RequestIDContext>: RouterMiddleware {
    /// `nil`: tracing is off.
    let tracer: (any Tracer)?
    let quietPaths: Set<String>

    public init(tracer: (any Tracer)?, quietPaths: Set<String> = []) {
        self.tracer = tracer
        self.quietPaths = quietPaths
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let tracer, !quietPaths.contains(request.uri.path) else {
            guard let parent = request.headers[.traceparent], TraceParent.isValid(parent) else { return try await next(request, context) }
            var headers = [("traceparent", parent)]
            if let state = request.headers[.tracestate], state.utf8.count <= 512 { headers.append(("tracestate", state)) }
            return try await TracePropagation.$headers.withValue(headers) { try await next(request, context) }
        }
        var parent = ServiceContext.topLevel
        tracer.extract(request.headers, into: &parent, using: RequestTracing.HTTPFieldsExtractor())
        let span = tracer.startSpan(
            "\(request.method.rawValue) \(request.uri.path)", context: parent, ofKind: .server, at: DefaultTracerClock.now,
            function: #function, file: #fileID, line: #line)
        guard span.isRecording else {
            // Not sampled: no child spans and no trace ids in the logs, only the decision passed
            // on (`traceparent` with flags 00) so the services called do not sample it either.
            span.end()
            var headers: [(String, String)] = []
            tracer.inject(span.context, into: &headers, using: RequestTracing.HeaderListInjector())
            return try await TracePropagation.$headers.withValue(headers) { try await next(request, context) }
        }
        // The tracer travels in the span's context: every step's span is opened from it.
        var traced = span.context
        traced[RequestTracing.TracerKey.self] = RequestTracing.TracerBox(tracer: tracer)
        span.updateAttributes { attributes in
            attributes["http.request.method"] = request.method.rawValue
            attributes["url.path"] = request.uri.path
            attributes["cortex.request_id"] = context.requestID
        }
        defer { span.end() }
        do {
            let response = try await ServiceContext.withValue(traced) { try await next(request, context) }
            span.attributes["http.response.status_code"] = Int(response.status.code)
            if response.status.code >= 500 { span.setStatus(SpanStatus(code: .error)) }
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            span.attributes["http.response.status_code"] = Int(status)
            if status >= 500 {
                span.recordError(error)
                span.setStatus(SpanStatus(code: .error))
            }
            throw error
        }
    }
}

/// W3C `traceparent`: `00-{32 hex trace id}-{16 hex parent id}-{2 hex flags}`, ids not all zero.
enum TraceParent {
    static func isValid(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 55, bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-") else {
            return false
        }
        func isHex(_ range: Range<Int>) -> Bool {
            bytes[range].allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
        }
        guard isHex(0..<2), isHex(3..<35), isHex(36..<52), isHex(53..<55), bytes[0..<2] != [0x66, 0x66] else { return false }
        return !bytes[3..<35].allSatisfy { $0 == 0x30 } && !bytes[36..<52].allSatisfy { $0 == 0x30 }
    }
}
