public import CoreMetrics
import Foundation
import Synchronization

/// The Prometheus client conventions' `process_*` metrics, read from `/proc` when scraped:
/// `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
/// `process_open_fds`, `process_max_fds`, `process_start_time_seconds`.
public final class ProcessMetrics: Sendable {
    private let cpuSeconds: FloatingPointCounter
    private let residentBytes: Gauge
    private let virtualBytes: Gauge
    private let openDescriptors: Gauge
    private let maxDescriptors: Gauge
    private let startTime: Gauge
    /// CPU seconds already counted: the counter only goes up by what was used since.
    private let counted = Mutex(0.0)

    public init(factory: any MetricsFactory) {
        cpuSeconds = FloatingPointCounter(label: "process_cpu_seconds_total", factory: factory)
        residentBytes = Gauge(label: "process_resident_memory_bytes", factory: factory)
        virtualBytes = Gauge(label: "process_virtual_memory_bytes", factory: factory)
        openDescriptors = Gauge(label: "process_open_fds", factory: factory)
        maxDescriptors = Gauge(label: "process_max_fds", factory: factory)
        startTime = Gauge(label: "process_start_time_seconds", factory: factory)
        // Fixed for the process's life: read once, not at every scrape.
        func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        let boot = read("/proc/stat").split(separator: "\n").first { $0.hasPrefix("btime ") }.flatMap { Double($0.dropFirst(6)) }
        if let boot, let fields = Self.startAndSize(stat: read("/proc/self/stat")) {
            startTime.record(boot + Double(fields.startTicks) / Double(sysconf(Int32(_SC_CLK_TCK))))
        }
    }

    /// Reads `/proc` now (before a scrape).
    public func update() {
        func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        let stat = read("/proc/self/stat")
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        if let ticks = ResourceUsage.processTicks(stat: stat) {
            let total = Double(ticks) / ticksPerSecond
            let delta = counted.withLock { counted in
                defer { counted = max(counted, total) }
                return max(0, total - counted)
            }
            if delta > 0 { cpuSeconds.increment(by: delta) }
        }
        if let fields = Self.startAndSize(stat: stat) { virtualBytes.record(Double(fields.virtualBytes)) }
        if let resident = ResourceUsage.residentBytes(status: read("/proc/self/status")) { residentBytes.record(Double(resident)) }
        let descriptors = ResourceUsage.descriptors()
        openDescriptors.record(descriptors.open)
        if let limit = descriptors.limit { maxDescriptors.record(limit) }
    }

    /// `/proc/self/stat`'s start time (field 22, clock ticks after boot) and virtual size (23, bytes).
    static func startAndSize(stat text: String) -> (startTicks: UInt64, virtualBytes: UInt64)? {
        guard let fields = ResourceUsage.statFields(text), let start = ResourceUsage.field(22, of: fields),
            let size = ResourceUsage.field(23, of: fields)
        else { return nil }
        return (start, size)
    }
}
