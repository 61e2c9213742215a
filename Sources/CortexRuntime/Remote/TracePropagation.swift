/// The W3C trace context (`traceparent`, and `tracestate` when there is one) that calls made by
/// the current task send to the services they call: LLM providers and remote model endpoints.
///
/// The server sets it around work that calls out: the request's own `traceparent` when tracing
/// is off (passed through unchanged), or the current span's when it is on. Empty: nothing is sent.
public enum TracePropagation {
    @TaskLocal public static var headers: [(String, String)] = []
}
