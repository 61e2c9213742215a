public import ServiceLifecycle

/// Re-evaluates readiness on an interval so `status_ready` and `model_ready` stay current
/// even when nothing polls `/ready`.
public struct ReadinessMonitor: Service {
    let checks: ReadinessChecks
    let interval: Duration

    /// Creates the monitor.
    public init(checks: ReadinessChecks, interval: Duration) {
        self.checks = checks
        self.interval = interval
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            _ = await checks.evaluate()
            do {
                try await cancelWhenGracefulShutdown {
                    try await Task.sleep(for: interval)
                }
            } catch {
                return
            }
        }
    }
}
