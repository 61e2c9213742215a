public import ServiceLifecycle

/// A part that needs nothing running but must be closed in its turn (the Redis connections, the
/// log writer): waits for graceful shutdown, then closes it. Its place in the service group says
/// when: after every service listed after it has stopped.
public struct CloseOnShutdown: Service {
    let close: @Sendable () async -> Void

    /// A service that runs `close` once the group shuts down (or is cancelled).
    public init(_ close: @escaping @Sendable () async -> Void) {
        self.close = close
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }
}
