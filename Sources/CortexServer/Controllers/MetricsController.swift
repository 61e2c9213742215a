public import Hummingbird
public import Prometheus

/// `GET /metrics`: the Prometheus text exposition of every metric Cortex records.
public struct MetricsController<Context: RequestIDContext>: Sendable {
    let registry: PrometheusCollectorRegistry
    /// Brings gauges read from elsewhere up to date before each scrape (`api_tenants_count`, which
    /// `cortex tenants create` changes from another process).
    let beforeScrape: @Sendable () async -> Void

    /// Creates the controller over the registry the metrics factory writes to.
    public init(registry: PrometheusCollectorRegistry, beforeScrape: @escaping @Sendable () async -> Void = {}) {
        self.registry = registry
        self.beforeScrape = beforeScrape
    }

    /// Adds `GET /metrics`.
    public func addRoutes(to router: Router<Context>) {
        router.get("/metrics") { _, _ in
            await beforeScrape()
            var bytes: [UInt8] = []
            bytes.reserveCapacity(16_384)
            registry.emit(into: &bytes)
            bytes = MetricHelp.annotate(bytes)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes))
            )
        }
    }
}
