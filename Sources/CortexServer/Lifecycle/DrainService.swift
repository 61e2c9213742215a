import CortexCore
public import Logging
public import ServiceLifecycle

/// Turns `/ready` to 503 the moment graceful shutdown starts, then holds the listener open for
/// `DRAIN_DELAY_S` so load balancers see the 503 before connections are refused.
///
/// Placed last in the service group, it is the first service told to shut down; the HTTP
/// server, placed before it, stops accepting and finishes in-flight requests only after.
public struct DrainService: Service {
    let state: DrainState
    let delay: Duration
    let logger: Logger

    /// Creates the service.
    public init(state: DrainState, delay: Duration, logger: Logger) {
        self.state = state
        self.delay = delay
        self.logger = logger
    }

    public func run() async throws {
        // Returns when graceful shutdown begins, or throws when the group is cancelled instead.
        try await gracefulShutdown()
        if state.begin() {
            logger.notice("DRAIN_START", metadata: ["delay_s": .stringConvertible(delay.inSeconds)])
        }
        if delay > .zero {
            try? await Task.sleep(for: delay)
        }
        logger.notice("DRAIN_LISTENER_CLOSING")
    }
}
