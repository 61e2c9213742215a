import Foundation
import HummingbirdTesting
import Testing

@testable import CortexServer

/// `GET /resources`: the kernel's files read as the kernel writes them, the percentages and
/// alerts from two snapshots, and the real binary's figures against `/proc` read by the test.
@Suite("Resources (GET /resources)")
struct ResourcesTests {
    @Test("the kernel's formats: /proc/stat, meminfo, a process's stat (a name with spaces and parentheses), status, cgroup v2 and v1")
    func parsers() throws {
        let stat = "cpu  2206417 1515 407957 2624609 15692 0 62085 492 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"
        let system = try #require(ResourceUsage.systemCPU(procStat: stat))
        #expect(system.total == 2_206_417 + 1515 + 407_957 + 2_624_609 + 15692 + 0 + 62085 + 492)
        #expect(system.busy == system.total - 2_624_609 - 15692)
        let memory = try #require(
            ResourceUsage.memory(meminfo: "MemTotal:       24683652 kB\nMemFree: 1 kB\nMemAvailable:   24004452 kB\n"))
        #expect(memory.total == 24_683_652 * 1024 && memory.available == 24_004_452 * 1024)
        let process = "4242 (cortex (worker) 1) S 1 4242 4242 0 -1 4194560 9 0 0 0 1500 250 0 0 20 0 12 0 100 1 1 18446744073709551615"
        #expect(ResourceUsage.processTicks(stat: process) == 1750)
        #expect(ResourceUsage.residentBytes(status: "Name:\tcortex\nVmRSS:\t  104512 kB\nThreads:\t12\n") == 104_512 * 1024)
        #expect(ResourceUsage.cores(cpuMax: "150000 100000\n") == 1.5 && ResourceUsage.cores(cpuMax: "max 100000\n") == nil)
        #expect(ResourceUsage.cgroupMicroseconds(cpuStat: "usage_usec 8123\nuser_usec 5000\n") == 8123)
        #expect(ResourceUsage.memoryLimit("536870912\n") == 536_870_912)
        #expect(ResourceUsage.memoryLimit("max\n") == nil && ResourceUsage.memoryLimit("9223372036854771712") == nil)

        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("v2/cpu.max", "200000 100000\n")
        try directory.write("v2/memory.max", "1073741824\n")
        try directory.write("v2/memory.current", "268435456\n")
        #expect(
            ResourceUsage.readLimits(root: directory.file("v2"))
                == ResourceUsage.Limits(cores: 2, memoryBytes: 1_073_741_824, memoryUsedBytes: 268_435_456))
        try directory.write("v1/cpu/cpu.cfs_quota_us", "50000\n")
        try directory.write("v1/cpu/cpu.cfs_period_us", "100000\n")
        try directory.write("v1/memory/memory.limit_in_bytes", "9223372036854771712\n")
        try directory.write("v1/memory/memory.usage_in_bytes", "2914709504\n")
        #expect(
            ResourceUsage.readLimits(root: directory.file("v1"))
                == ResourceUsage.Limits(cores: 0.5, memoryBytes: nil, memoryUsedBytes: 2_914_709_504))
        try directory.write("none/cpu/cpu.cfs_quota_us", "-1\n")
        #expect(ResourceUsage.readLimits(root: directory.file("none")) == ResourceUsage.Limits())
    }

    static func report(
        limits: ResourceUsage.Limits = .init(), busy: UInt64, cgroupMicroseconds: UInt64? = nil, available: UInt64, open: Int,
        free: UInt64
    ) -> ResourceReport {
        let earlier = ResourceUsage.Snapshot(at: 0, systemBusy: 100, systemTotal: 1000, cgroupCPUMicroseconds: 0, processTicks: 10)
        let later = ResourceUsage.Snapshot(
            at: 2_000_000_000, systemBusy: 100 + busy, systemTotal: 2000, cgroupCPUMicroseconds: cgroupMicroseconds, processTicks: 60)
        return ResourceReport(
            from: earlier, to: later, limits: limits, memory: (1000, available), residentBytes: 42 << 20, descriptors: (open, 1000),
            disk: ("/data/cortex.db", free, 100 << 20), eventLoopLagMilliseconds: 0.2, cores: 4, ticksPerSecond: 100)
    }

    @Test("percentages over the interval, the cgroup's quota and limit where it has them, and the alerts past their thresholds")
    func reportAndAlerts() {
        let calm = Self.report(busy: 500, available: 700, open: 100, free: 50 << 20)
        #expect(calm.cpuPercent == 50 && calm.cpuSource == "proc" && calm.memoryPercent.rounded() == 30)
        #expect(calm.processCPUPercent == 25, "50 ticks at 100 a second over 2 s: a quarter of one core")
        #expect(calm.alerts.isEmpty && calm.windowSeconds == 2)

        let busy = Self.report(busy: 900, available: 100, open: 900, free: 5 << 20)
        #expect(busy.alerts.map(\.name) == ["cpu_high", "memory_high", "disk_low", "descriptors_high"])
        #expect(busy.alerts.map(\.value) == [90, 90, 95, 90] && busy.alerts.map(\.threshold) == [80, 80, 90, 80])

        // A container with 1.5 cores that used 2.7 s of CPU in 2 s: 90% of its quota, whatever the machine did.
        let container = Self.report(
            limits: .init(cores: 1.5, memoryBytes: 1000, memoryUsedBytes: 850), busy: 10, cgroupMicroseconds: 2_700_000, available: 900,
            open: 10, free: 90 << 20)
        #expect(container.cpuSource == "cgroup" && (container.cpuPercent * 1000).rounded() == 90_000)
        #expect(container.memorySource == "cgroup" && container.memoryPercent == 85)
        #expect(container.alerts.map(\.name) == ["cpu_high", "memory_high"])
    }

    @Test("GET /resources from the real binary: its memory and descriptors agree with /proc read by the test")
    func realProcess() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (cortex, port) = try await CortexProcess.serve(environment: [:], directory: directory)
        defer { cortex.terminate() }
        let answer = try #require(try RawHTTPConnection.request(port: port, path: "/resources"))
        #expect(answer.status == 200, "\(answer.body)")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any])
        let process = try #require(body["process"] as? [String: Any])
        let status = try String(contentsOfFile: "/proc/\(cortex.process.processIdentifier)/status", encoding: .utf8)
        let resident = Double(try #require(ResourceUsage.residentBytes(status: status))) / 1_048_576
        let reported = try #require(process["memory_mb"] as? Double)
        #expect(abs(reported - resident) / resident < 0.25, "reported \(reported) MiB, /proc says \(resident) MiB")
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(cortex.process.processIdentifier)/fd").count
        let open = try #require(process["open_descriptors"] as? Int)
        #expect(open > 0 && abs(open - descriptors) <= 5, "reported \(open), /proc lists \(descriptors)")
        let cpu = try #require(body["cpu"] as? [String: Any])
        let usage = try #require(cpu["usage_percent"] as? Double)
        #expect((0...100).contains(usage) && cpu["cores"] as? Int == ProcessInfo.processInfo.activeProcessorCount)
        let memory = try #require(body["memory"] as? [String: Any])
        #expect((0...100).contains(memory["usage_percent"] as? Double ?? -1) && (memory["total_mb"] as? Double ?? 0) > 0)
        let disk = try #require(body["disk"] as? [String: Any])
        #expect((disk["free_mb"] as? Double ?? 0) > 0 && (disk["path"] as? String)?.hasSuffix("cortex.db") == true)
        #expect(body["alerts"] is [Any] && ((body["event_loop"] as? [String: Any])?["lag_ms"] as? Double ?? -1) >= 0)
    }

    @Test("on PostgreSQL the disk is the working directory's, as the readiness check watches it (not the database URL)")
    func postgresDisk() async throws {
        let server = try await TestServer.make(database: .postgres)
        try await server.test { client in
            let disk = try #require(try await client.get("/resources").body.jsonObject["disk"] as? [String: Any])
            #expect((disk["free_mb"] as? Double ?? 0) > 0 && (disk["total_mb"] as? Double ?? 0) > 0, "\(disk)")
            #expect((disk["path"] as? String)?.hasPrefix(FileManager.default.currentDirectoryPath) == true, "\(disk)")
        }
    }
}
