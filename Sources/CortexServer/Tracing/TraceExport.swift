public import Logging
import OTel
public import ServiceLifecycle
public import Tracing

extension CortexConfiguration.Traces {
    /// The tracer and the service that exports its spans (swift-otel's OTLP/HTTP exporter and
    /// batch processor, run in the service group so spans are flushed at shutdown); `nil` without
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`. Only traces: metrics stay on `/metrics`, logs on standard output.
    ///
    /// swift-otel also reads the OpenTelemetry SDK variables Cortex does not declare
    /// (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`, `OTEL_RESOURCE_ATTRIBUTES`, ...) from the environment.
    public func makeTracer(logger: Logger) throws -> (tracer: any Tracer, service: any Service)? {
        guard let endpoint else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.protocol = exportProtocol == .httpJSON ? .httpJSON : .httpProtobuf
        configuration.traces.otlpExporter.endpoint = endpoint + "/v1/traces"
        configuration.traces.sampler =
            switch sampler {
            case .alwaysOn: .alwaysOn
            case .alwaysOff: .alwaysOff
            case .traceIDRatio: .traceIDRatio(ratio: samplerRatio) ?? .alwaysOn
            case .parentBasedAlwaysOn: .parentBasedAlwaysOn
            case .parentBasedAlwaysOff: .parentBasedAlwaysOff
            case .parentBasedTraceIDRatio: .parentBasedTraceIDRatio(ratio: samplerRatio) ?? .parentBasedAlwaysOn
            }
        configuration.diagnosticLogger = .custom(logger)
        configuration.diagnosticLogLevel = .warning
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        return (backend.factory, backend.service)
    }

    /// Puts the current span's `trace_id` and `span_id` on every log line written inside it.
    public static var logMetadata: Logger.MetadataProvider { OTel.makeLoggingMetadataProvider() }
}
