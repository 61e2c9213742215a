import CortexCore
import Foundation
public import NIOCore
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// `GET /resources`' figures and alerts, from two ``ResourceUsage/Snapshot``s.
public struct ResourceReport: Sendable {
    /// The machine's, or the cgroup's with a CPU quota: percent of what it may use.
    public var cpuPercent: Double
    /// `proc` (the whole machine) or `cgroup` (a container's quota).
    public var cpuSource: String
    public var cores: Int
    public var limitCores: Double?
    /// Percent of the machine's memory in use, or of the cgroup's limit when it has one.
    public var memoryPercent: Double
    public var memorySource: String
    public var memoryTotalBytes: UInt64
    public var memoryAvailableBytes: UInt64
    public var memoryLimitBytes: UInt64?
    /// This process: resident memory, CPU in percent of one core, descriptors.
    public var processResidentBytes: UInt64
    public var processCPUPercent: Double
    public var openDescriptors: Int
    public var descriptorLimit: Int?
    /// The database's filesystem.
    public var diskPath: String
    public var diskFreeBytes: UInt64?
    public var diskTotalBytes: UInt64?
    /// The longest an event loop took to run a task handed to it, at the last sample.
    public var eventLoopLagMilliseconds: Double
    /// Seconds the percentages were measured over.
    public var windowSeconds: Double

    /// One breached threshold.
    public struct Alert: Sendable, Equatable {
        public var name: String
        public var value: Double
        public var threshold: Double
    }

    /// The thresholds: CPU and memory above 80%, the database's disk above 90% full, descriptors
    /// above 80% of the soft limit.
    public static let thresholds: [(name: String, threshold: Double)] = [
        ("cpu_high", 80), ("memory_high", 80), ("disk_low", 90), ("descriptors_high", 80),
    ]

    /// The thresholds breached now.
    public var alerts: [Alert] {
        let disk = diskTotalBytes.flatMap { total in diskFreeBytes.map { 100 * (1 - Double($0) / Double(max(total, 1))) } }
        let descriptors = descriptorLimit.map { 100 * Double(openDescriptors) / Double(max($0, 1)) }
        let values: [Double?] = [cpuPercent, memoryPercent, disk, descriptors]
        return zip(Self.thresholds, values).compactMap { limit, value in
            guard let value, value > limit.threshold else { return nil }
            return Alert(name: limit.name, value: (value * 10).rounded() / 10, threshold: limit.threshold)
        }
    }

    /// The report of the interval from `earlier` to `later`, with what is read at `later`.
    public init(
        from earlier: ResourceUsage.Snapshot, to later: ResourceUsage.Snapshot, limits: ResourceUsage.Limits,
        memory: (total: UInt64, available: UInt64), residentBytes: UInt64, descriptors: (open: Int, limit: Int?),
        disk: (path: String, free: UInt64?, total: UInt64?), eventLoopLagMilliseconds: Double, cores: Int, ticksPerSecond: Double
    ) {
        let seconds = Double(later.at &- earlier.at) / 1e9
        windowSeconds = seconds
        self.cores = cores
        limitCores = limits.cores
        if let quota = limits.cores, let now = later.cgroupCPUMicroseconds, let then = earlier.cgroupCPUMicroseconds, seconds > 0 {
            cpuSource = "cgroup"
            cpuPercent = 100 * Double(now &- then) / 1e6 / seconds / quota
        } else {
            cpuSource = "proc"
            let total = later.systemTotal &- earlier.systemTotal
            cpuPercent = total == 0 ? 0 : 100 * Double(later.systemBusy &- earlier.systemBusy) / Double(total)
        }
        memoryTotalBytes = memory.total
        memoryAvailableBytes = memory.available
        memoryLimitBytes = limits.memoryBytes
        if let limit = limits.memoryBytes, let used = limits.memoryUsedBytes, limit > 0 {
            memorySource = "cgroup"
            memoryPercent = 100 * Double(used) / Double(limit)
        } else {
            memorySource = "proc"
            memoryPercent = memory.total == 0 ? 0 : 100 * (1 - Double(memory.available) / Double(memory.total))
        }
        processResidentBytes = residentBytes
        processCPUPercent = seconds > 0 ? 100 * Double(later.processTicks &- earlier.processTicks) / ticksPerSecond / seconds : 0
        (openDescriptors, descriptorLimit) = descriptors
        (diskPath, diskFreeBytes, diskTotalBytes) = disk
        self.eventLoopLagMilliseconds = eventLoopLagMilliseconds
    }
}

/// Samples the machine every ``interval`` so `GET /resources` answers at once with percentages
/// over the last interval; a Service in the server's group.
public final class ResourceMonitor: Service, Sendable {
    /// How often it samples; the percentages cover this window.
    public static let interval: Duration = .seconds(2)

    private struct State {
        var previous: ResourceUsage.Snapshot
        var report: ResourceReport?
    }

    private let state: Mutex<State>
    let diskPath: String
    let eventLoops: any EventLoopGroup

    /// Starts from a snapshot taken now; `diskPath` is the database's file, `eventLoops` the
    /// server's (NIO's shared group unless given).
    public init(diskPath: String, eventLoops: (any EventLoopGroup)? = nil) {
        state = Mutex(State(previous: ResourceUsage.snapshot()))
        self.diskPath = diskPath
        self.eventLoops = eventLoops ?? MultiThreadedEventLoopGroup.singleton
    }

    /// The last report; before the first interval has passed, one over the time since start.
    public func report() async -> ResourceReport {
        if let report = state.withLock({ $0.report }) { return report }
        return await sample()
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while true {
                try await Task.sleep(for: Self.interval)
                _ = await self.sample()
            }
        }
    }

    /// Reads the counters, makes the report of the interval since the last sample, keeps both.
    @discardableResult
    func sample() async -> ResourceReport {
        let lag = await eventLoopLag()
        let now = ResourceUsage.snapshot()
        func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        let disk = ReadinessChecks.diskSpace(at: diskPath)
        let previous = state.withLock { $0.previous }
        let report = ResourceReport(
            from: previous, to: now, limits: ResourceUsage.readLimits(),
            memory: ResourceUsage.memory(meminfo: read("/proc/meminfo")) ?? (0, 0),
            residentBytes: ResourceUsage.residentBytes(status: read("/proc/self/status")) ?? 0,
            descriptors: ResourceUsage.descriptors(),
            disk: (diskPath, disk?.free, disk?.total),
            eventLoopLagMilliseconds: lag, cores: ProcessInfo.processInfo.activeProcessorCount,
            ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))))
        state.withLock { state in
            state.previous = now
            state.report = report
        }
        return report
    }

    /// The longest any event loop took to start a task handed to it now, in milliseconds.
    func eventLoopLag() async -> Double {
        var longest: UInt64 = 0
        for loop in eventLoops.makeIterator() {
            let start = DispatchTime.now().uptimeNanoseconds
            let ran = try? await loop.submit { DispatchTime.now().uptimeNanoseconds }.get()
            longest = max(longest, (ran ?? start) &- start)
        }
        return Double(longest) / 1e6
    }
}
