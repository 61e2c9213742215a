import Foundation

/// What the machine (or the container's cgroup) and this process use, read from `/proc` and
/// `/sys/fs/cgroup`: the figures of `GET /resources`.
///
/// A ``Snapshot`` is read at one moment; percentages come from two of them (``Report/init(from:to:...)``),
/// so the reading itself never waits. Every parser takes the file's text, so each is tested with
/// the kernel's formats and no machine.
public enum ResourceUsage {
    /// Counters read at one moment.
    public struct Snapshot: Sendable, Equatable {
        /// Monotonic nanoseconds when it was read.
        public var at: UInt64
        /// `/proc/stat`'s first line: jiffies not idle, and all of them.
        public var systemBusy: UInt64
        public var systemTotal: UInt64
        /// The cgroup's CPU time in microseconds, when a cgroup reports one.
        public var cgroupCPUMicroseconds: UInt64?
        /// This process's user and system time in clock ticks (`/proc/self/stat`).
        public var processTicks: UInt64
    }

    /// The cgroup's limits, `nil` where it sets none.
    public struct Limits: Sendable, Equatable {
        /// CPU quota in cores (`cpu.max`, or v1's `cfs_quota_us / cfs_period_us`).
        public var cores: Double?
        /// Memory limit in bytes and what the cgroup uses now.
        public var memoryBytes: UInt64?
        public var memoryUsedBytes: UInt64?
    }

    // MARK: Parsers of the kernel's files

    /// `/proc/stat`'s `cpu` line: (busy, total) jiffies; busy is all but idle and iowait.
    public static func systemCPU(procStat text: String) -> (busy: UInt64, total: UInt64)? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        let values = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard values.count >= 4 else { return nil }
        // user nice system idle iowait irq softirq steal (guest time is counted in user already).
        let total = values.prefix(8).reduce(0, +)
        let idle = values[3] + (values.count > 4 ? values[4] : 0)
        return (total - idle, total)
    }

    /// `/proc/meminfo`: (total, available) bytes.
    public static func memory(meminfo text: String) -> (total: UInt64, available: UInt64)? {
        var fields: [Substring: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let value = UInt64(parts[1]) else { continue }
            fields[parts[0].dropLast()] = value * 1024
        }
        guard let total = fields["MemTotal"], let available = fields["MemAvailable"] else { return nil }
        return (total, available)
    }

    /// `/proc/self/stat`: user and system time in clock ticks (fields 14 and 15, counted after the
    /// command name, which may itself hold spaces and parentheses).
    public static func processTicks(stat text: String) -> UInt64? {
        guard let fields = statFields(text), let user = field(14, of: fields), let system = field(15, of: fields) else { return nil }
        return user + system
    }

    /// `/proc/[pid]/stat`'s fields after the command name (the name may hold spaces and
    /// parentheses, so it ends at the last `)`): the first is field 3, the state.
    static func statFields(_ text: String) -> [Substring]? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    /// Field `number` (as `proc(5)` numbers them, from 1) of ``statFields(_:)``, as an integer.
    static func field(_ number: Int, of fields: [Substring]) -> UInt64? {
        fields.indices.contains(number - 3) ? UInt64(fields[number - 3]) : nil
    }

    /// `/proc/self/status`'s `VmRSS`, in bytes.
    public static func residentBytes(status text: String) -> UInt64? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        return line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { UInt64($0) }.map { $0 * 1024 }
    }

    /// cgroup v2's `cpu.max` (`max 100000` or `200000 100000`): the quota in cores.
    public static func cores(cpuMax text: String) -> Double? {
        let parts = text.split(whereSeparator: \.isWhitespace)
        guard parts.count == 2, let quota = Double(parts[0]), let period = Double(parts[1]), period > 0 else { return nil }
        return quota / period
    }

    /// cgroup v2's `cpu.stat` `usage_usec`.
    public static func cgroupMicroseconds(cpuStat text: String) -> UInt64? {
        text.split(separator: "\n").first { $0.hasPrefix("usage_usec ") }.flatMap { UInt64($0.dropFirst("usage_usec ".count)) }
    }

    /// A memory limit (`memory.max` or v1's `memory.limit_in_bytes`); `max`, or v1's "no limit"
    /// (a page-rounded 2^63), is none.
    public static func memoryLimit(_ text: String) -> UInt64? {
        guard let value = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)), value < 1 << 60 else { return nil }
        return value
    }

    // MARK: Reading this machine

    /// Where the cgroup files are (`/sys/fs/cgroup`); tests point it elsewhere.
    public static func readLimits(root: String = "/sys/fs/cgroup") -> Limits {
        func read(_ path: String) -> String? { try? String(contentsOfFile: root + "/" + path, encoding: .utf8) }
        var limits = Limits()
        if let cpuMax = read("cpu.max") {
            limits.cores = cores(cpuMax: cpuMax)
            limits.memoryBytes = read("memory.max").flatMap(memoryLimit)
            limits.memoryUsedBytes = read("memory.current").flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        } else {
            // cgroup v1: a quota of -1 is none.
            if let quota = read("cpu/cpu.cfs_quota_us").flatMap({ Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }),
                let period = read("cpu/cpu.cfs_period_us").flatMap({ Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }),
                quota > 0, period > 0
            {
                limits.cores = quota / period
            }
            limits.memoryBytes = read("memory/memory.limit_in_bytes").flatMap(memoryLimit)
            limits.memoryUsedBytes = read("memory/memory.usage_in_bytes").flatMap {
                UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        return limits
    }

    /// The counters now.
    public static func snapshot(cgroupRoot: String = "/sys/fs/cgroup") -> Snapshot {
        func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        let system = systemCPU(procStat: read("/proc/stat")) ?? (0, 0)
        let cgroup =
            cgroupMicroseconds(cpuStat: read(cgroupRoot + "/cpu.stat"))
            ?? UInt64(read(cgroupRoot + "/cpuacct/cpuacct.usage").trimmingCharacters(in: .whitespacesAndNewlines)).map { $0 / 1000 }
        return Snapshot(
            at: DispatchTime.now().uptimeNanoseconds, systemBusy: system.busy, systemTotal: system.total,
            cgroupCPUMicroseconds: cgroup, processTicks: processTicks(stat: read("/proc/self/stat")) ?? 0)
    }

    /// Open descriptors (entries of `/proc/self/fd`) and the soft limit.
    static func descriptors() -> (open: Int, limit: Int?) {
        let open = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.count ?? 1) - 1
        var limit = rlimit()
        // RLIM_INFINITY is all ones.
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max, limit.rlim_cur < Int.max else {
            return (open, nil)
        }
        return (open, Int(limit.rlim_cur))
    }
}
