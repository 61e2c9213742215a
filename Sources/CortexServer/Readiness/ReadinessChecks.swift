public import CortexRuntime
public import CortexStore
import Foundation
public import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Decides whether this replica should receive traffic: the database accepts a real write,
/// at least one model is ready, free disk is above the minimum, the LLM deployment (if any) can
/// answer, and the server is not draining.
public final class ReadinessChecks: Sendable {
    let store: StateStore
    let registry: ModelRegistry
    let drain: DrainState
    let minFreeDiskBytes: UInt64
    let metrics: ServerMetrics
    let sharedRateLimiter: SharedRateLimiter?
    let llm: [LLMGateway]
    let logger: Logger
    /// -1 unknown, 0 not ready, 1 ready: to log transitions once.
    private let lastState = Atomic<Int>(-1)
    /// The models whose files differed from those loaded at the last evaluation, with what differed.
    private let changedFiles = Mutex<[String: String]>([:])

    /// Creates the checks.
    public init(
        store: StateStore,
        registry: ModelRegistry,
        drain: DrainState,
        minFreeDiskMB: Int,
        metrics: ServerMetrics,
        sharedRateLimiter: SharedRateLimiter? = nil,
        llm: [LLMGateway] = [],
        logger: Logger
    ) {
        self.store = store
        self.registry = registry
        self.drain = drain
        self.minFreeDiskBytes = UInt64(minFreeDiskMB) * 1_048_576
        self.metrics = metrics
        self.sharedRateLimiter = sharedRateLimiter
        self.llm = llm
        self.logger = logger
    }

    /// Runs every check, updates `status_ready` and `model_ready`, and logs `READY_CHANGED` on a transition.
    public func evaluate() async -> ReadinessReport {
        var checks: [ReadinessReport.Check] = []

        do {
            try await store.probeWrite()
            checks.append(.init(name: "database", ok: true, detail: "write ok (\(store.location))"))
        } catch {
            checks.append(.init(name: "database", ok: false, detail: "write failed: \(error)"))
        }

        let entries = registry.entries
        let ready = entries.filter { $0.state.name == "ready" }.map(\.source.name)
        for entry in entries {
            metrics.model(entry.source.name).ready.record(entry.state.name == "ready" ? 1 : 0)
        }
        if ready.isEmpty {
            let reasons = entries.map(Self.notReadyReason)
            let detail = entries.isEmpty ? "no models configured" : "no model ready (" + reasons.joined(separator: "; ") + ")"
            checks.append(.init(name: "models", ok: false, detail: detail))
        } else {
            let notReady = entries.filter { $0.state.name != "ready" }.map(Self.notReadyReason)
            checks.append(
                .init(
                    name: "models",
                    ok: true,
                    detail: "\(ready.count) ready (\(ready.joined(separator: ", ")))"
                        + (notReady.isEmpty ? "" : ", \(notReady.count) not ready (\(notReady.joined(separator: "; ")))")
                )
            )
        }

        checks.append(modelFilesCheck(entries))

        let diskPath = Self.diskPath(of: store)
        if let free = Self.diskSpace(at: diskPath)?.free {
            let ok = free >= minFreeDiskBytes
            checks.append(
                .init(name: "disk", ok: ok, detail: "\(free / 1_048_576) MiB free, minimum \(minFreeDiskBytes / 1_048_576) MiB")
            )
        } else {
            checks.append(.init(name: "disk", ok: false, detail: "cannot read free space of \(diskPath)"))
        }

        // Degraded, not failing: requests are still limited, by this replica alone.
        if let limiter = sharedRateLimiter {
            await limiter.check()
            let status = limiter.status
            let detail =
                status.shared
                ? "shared through \(limiter.location)"
                : "degraded: local limits since \(status.since.ISO8601Format()) (\(status.reason))"
            checks.append(.init(name: "rate_limit", ok: true, detail: detail))
        }

        // The LLM assistant: warming is not ready only when nothing else can answer.
        if !llm.isEmpty {
            let states = llm.map(Self.llmState)
            let detail = states.map { llm.count > 1 ? "\($0.name): \($0.detail)" : $0.detail }.joined(separator: "; ")
            checks.append(.init(name: "llm", ok: states.allSatisfy(\.ok), detail: detail))
        }

        let draining = drain.isDraining
        checks.append(.init(name: "draining", ok: !draining, detail: draining ? "shutting down" : "serving"))

        let report = ReadinessReport(checks: checks)
        let state = report.isReady ? 1 : 0
        metrics.statusReady.record(state)
        if lastState.exchange(state, ordering: .relaxed) != state {
            logger.notice(
                "READY_CHANGED",
                metadata: ["ready": .stringConvertible(report.isReady), "failing": .array(report.failing.map { .string($0) })]
            )
        }
        return report
    }

    /// Whether each model's files on disk still match what was loaded. Informational (always ok):
    /// the loaded copy serves on; the operator learns now what the next restart would load.
    /// `model_file_changed` follows it, and `MODEL_FILE_CHANGED` / `MODEL_FILE_RESTORED` log each change once.
    func modelFilesCheck(_ entries: [ModelRegistry.Entry]) -> ReadinessReport.Check {
        var now: [String: String] = [:]
        for entry in entries {
            let changes = entry.files?.changes() ?? []
            metrics.model(entry.source.name).fileChanged.record(changes.isEmpty ? 0 : 1)
            if !changes.isEmpty { now[entry.source.name] = changes.map(\.description).joined(separator: "; ") }
        }
        let before = changedFiles.withLock { last in
            defer { last = now }
            return last
        }
        for (model, detail) in now where before[model] != detail {
            logger.warning("MODEL_FILE_CHANGED", metadata: ["model": "\(model)", "detail": "\(detail)"])
        }
        for model in before.keys where now[model] == nil {
            logger.notice("MODEL_FILE_RESTORED", metadata: ["model": "\(model)"])
        }
        let detail =
            now.isEmpty
            ? "as loaded"
            : now.keys.sorted().map { "\($0): \(now[$0] ?? "")" }.joined(separator: "; ")
                + " (the loaded copy serves; a restart would load what is on disk)"
        return .init(name: "model_files", ok: true, detail: detail)
    }

    /// Whether an LLM deployment can answer, and why (or why not).
    static func llmState(_ llm: LLMGateway) -> (name: String, ok: Bool, detail: String) {
        let path = llm.warmup.path
        let primary = llm.providerNames[0]
        let model = llm.warmup.primary.model
        let detail: String
        switch path {
        case .primary: detail = "primary: \(primary) has \(model)"
        case .warming:
            detail =
                "warming: \(primary) does not have \(model) yet"
                + (llm.warmup.hasFallback ? "; the fallback answers" : " and no fallback is configured")
                + (llm.warmup.lastError.map { " (last poll: \($0))" } ?? "")
        case .fallback: detail = "fallback: \(primary) never got \(model) within PRIMARY_POLL_MAX_S"
        }
        return (llm.configuration.deployment, path != .warming || llm.warmup.hasFallback, detail)
    }

    /// `name: why` for a model that does not serve.
    static func notReadyReason(_ entry: ModelRegistry.Entry) -> String {
        if case .failed(let reason) = entry.state { return "\(entry.source.name): \(reason)" }
        return "\(entry.source.name): \(entry.state.name)"
    }

    /// The file whose filesystem the disk check watches: the database's; with PostgreSQL, the
    /// working directory's (logs, models, temporary files).
    static func diskPath(of store: StateStore) -> String {
        store.localPath ?? FileManager.default.currentDirectoryPath + "/."
    }

    /// Bytes available to this process, and in all, on the filesystem holding `path` (the
    /// readiness check's free space and `GET /resources`' disk).
    static func diskSpace(at path: String) -> (free: UInt64, total: UInt64)? {
        var stats = statvfs()
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        guard statvfs(directory.isEmpty ? "/" : directory, &stats) == 0 else { return nil }
        return (UInt64(stats.f_bavail) * UInt64(stats.f_frsize), UInt64(stats.f_blocks) * UInt64(stats.f_frsize))
    }
}
